//! The `shoal daemon` process under test (started on a state directory with a REST port the
//! daemon picks itself, stopped cleanly or killed), and checks of the download objects its
//! Tribler 7.13 REST API must produce (`shared/tribler-api/README.md` §4).
//!
//! The daemon contract the tests rely on: `shoal daemon --state-dir DIR --http-port 0
//! --api-key KEY` binds 127.0.0.1, reports `REST API on http://127.0.0.1:PORT` on stderr, and
//! with `SHOAL_LOCAL_ONLY=1` uses no public-network feature (DHT bootstrap, port mapping).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::proc::Proc;
use crate::shoal::command;
use crate::workdir::TestDir;

/// How long the daemon may take to report its REST port.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a daemon gets between SIGTERM and SIGKILL when dropped.
const GRACE: Duration = Duration::from_secs(10);

/// A running `shoal daemon`.
pub struct Daemon {
    proc: Proc,
    port: u16,
    key: String,
    state: PathBuf,
}

impl Daemon {
    /// Starts `shoal daemon` on `state` with API key `key` and waits until it reports its REST
    /// port. `name` labels its logs (a restarted daemon gets `name-2`, ...).
    pub fn start(td: &TestDir, name: &str, state: &Path, key: &str) -> Daemon {
        let mut cmd = command(["daemon"]);
        cmd.arg("--state-dir").arg(state);
        cmd.args(["--http-port", "0", "--api-key", key]);
        for var in ["TSTATEDIR", "CORE_API_PORT", "CORE_API_KEY"] {
            cmd.env_remove(var);
        }
        cmd.env("SHOAL_LOCAL_ONLY", "1");
        let mut proc = Proc::spawn(name, cmd, &td.logs(), GRACE);
        proc.wait_stderr("report its REST port", START_TIMEOUT, |s| rest_port(s).is_some());
        let port = rest_port(&proc.stderr()).expect("the line was just seen");
        Daemon { proc, port, key: key.to_string(), state: state.to_path_buf() }
    }

    /// `http://127.0.0.1:PORT<path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The REST port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The API key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The resume file of a download: `<state>/dlcheckpoints/<infohash>.state`.
    pub fn checkpoint(&self, infohash: &str) -> PathBuf {
        self.state.join("dlcheckpoints").join(format!("{infohash}.state"))
    }

    /// The process (its logs, its status).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// Waits for the daemon to exit by itself (after `PUT /shutdown`); panics with its logs
    /// unless it exits 0 within `timeout`.
    pub fn expect_exit(mut self, timeout: Duration) {
        self.proc.expect_success(timeout);
    }

    /// Stops the daemon with SIGTERM; panics with its logs unless it exits 0 within `timeout`.
    pub fn terminate(mut self, timeout: Duration) {
        self.proc.terminate_expect_success(timeout);
    }

    /// Kills the daemon with SIGKILL (no chance to save anything) and reaps it.
    pub fn kill9(mut self) {
        self.proc.signal(libc::SIGKILL);
        if let Err(e) = self.proc.wait_exit(START_TIMEOUT) {
            panic!("{e}\n{}", self.proc.logs());
        }
    }
}

/// The port in the daemon's `REST API on http://127.0.0.1:PORT` line, if it is there yet.
fn rest_port(stderr: &str) -> Option<u16> {
    let rest = stderr.split("REST API on http://127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    // The line must be complete: digits followed by something (a newline at least).
    if digits.len() == rest.len() {
        return None;
    }
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Status codes (§4.1): `status` is the enum name Tribler 7.13 sends (samples/*/downloads_*.json
// show "SEEDING", "DOWNLOADING", "STOPPED", "HASHCHECKING", "METADATA"), `status_code` its value.

/// `status` for each `status_code`, indexed by the code.
pub const STATUS_NAMES: [&str; 10] = [
    "ALLOCATING_DISKSPACE",
    "WAITING_FOR_HASHCHECK",
    "HASHCHECKING",
    "DOWNLOADING",
    "SEEDING",
    "STOPPED",
    "STOPPED_ON_ERROR",
    "METADATA",
    "CIRCUITS",
    "EXIT_NODES",
];
/// `status_code` of a download fetching data.
pub const DOWNLOADING: i64 = 3;
/// `status_code` of a download whose wanted data is complete.
pub const SEEDING: i64 = 4;
/// `status_code` of a download the user stopped.
pub const STOPPED: i64 = 5;
/// `status_code` of an anonymous download waiting for tunnel circuits.
pub const CIRCUITS: i64 = 8;

/// The download's `status_code`, after checking that `status` is its name.
pub fn status(dl: &Value) -> i64 {
    let code = dl["status_code"].as_i64().unwrap_or_else(|| panic!("status_code is not an integer: {dl}"));
    let name = usize::try_from(code)
        .ok()
        .and_then(|c| STATUS_NAMES.get(c))
        .unwrap_or_else(|| panic!("status_code {code} is not one of Tribler's: {dl}"));
    assert_eq!(
        dl["status"],
        json!(name),
        "`status` must be the name of status_code {code} (as Tribler sends it): {dl}"
    );
    code
}

/// The download's `progress` (0..1).
pub fn progress(dl: &Value) -> f64 {
    dl["progress"].as_f64().unwrap_or_else(|| panic!("progress is not a number: {dl}"))
}

// ---------------------------------------------------------------------------------------------
// The download object (§4.3).

/// Asserts that a download object has every field of §4.3 (R and P names) with its type.
pub fn assert_download_fields(dl: &Value) {
    for f in [
        "speed_down",
        "speed_up",
        "size",
        "num_peers",
        "num_seeds",
        "num_connected_peers",
        "num_connected_seeds",
        "all_time_upload",
        "all_time_download",
        "total_up",
        "total_down",
        "hops",
        "max_upload_speed",
        "max_download_speed",
        "total_pieces",
        "time_added",
    ] {
        assert!(dl[f].is_u64(), "`{f}` must be a non-negative integer: {dl}");
    }
    for f in ["progress", "eta", "all_time_ratio", "ratio", "availability"] {
        assert!(dl[f].is_number(), "`{f}` must be a number: {dl}");
    }
    for f in ["anon_download", "safe_seeding", "channel_download"] {
        assert!(dl[f].is_boolean(), "`{f}` must be a bool: {dl}");
    }
    for f in ["name", "infohash", "status", "destination", "error"] {
        assert!(dl[f].is_string(), "`{f}` must be a string: {dl}");
    }
    assert!(dl["vod_mode"].is_boolean() || dl["vod_mode"].is_null(), "`vod_mode` must be a bool or null: {dl}");
    let p = progress(dl);
    assert!((0.0..=1.0).contains(&p), "progress out of 0..1: {dl}");
    status(dl);
    let trackers = dl["trackers"].as_array().unwrap_or_else(|| panic!("`trackers` must be a list: {dl}"));
    for t in trackers {
        assert!(
            t["url"].is_string() && t["peers"].is_u64() && t["status"].is_string(),
            "a tracker must be {{url, peers, status}}: {t}"
        );
        let text = t["status"].as_str().unwrap_or_default();
        assert!(
            TRACKER_STATUSES.contains(&text) || TRACKER_STATUS_PREFIXES.iter().any(|p| text.starts_with(p)),
            "tracker status {text:?} is not one of Tribler's (§4.3; it keeps the last result while \
             re-announcing): {t}"
        );
    }
    let urls: Vec<&str> = trackers.iter().filter_map(|t| t["url"].as_str()).collect();
    assert!(
        urls.ends_with(&["[DHT]", "[PeX]"]),
        "trackers must end with the [DHT] and [PeX] pseudo-trackers: {urls:?}"
    );
}

/// Tracker statuses of §4.3 (and `Disabled` for the `[DHT]` pseudo-tracker).
pub const TRACKER_STATUSES: [&str; 5] = ["Not contacted yet", "Working", "Not working", "Timeout", "Disabled"];

/// Prefixes of the tracker statuses of §4.3 that carry a detail.
pub const TRACKER_STATUS_PREFIXES: [&str; 3] = ["HTTP status code ", "Error: ", "Warning: "];

/// The tracker entry of `url` in a download object.
pub fn tracker_entry<'a>(dl: &'a Value, url: &str) -> Option<&'a Value> {
    dl["trackers"].as_array()?.iter().find(|t| t["url"] == url)
}

/// Standard base64 (with padding) decoded; `None` if malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = text.trim_end_matches('=');
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{base64_decode, rest_port};

    #[test]
    fn finds_the_port_only_on_a_complete_line() {
        assert_eq!(rest_port("starting\nREST API on http://127.0.0.1:40123\n"), Some(40123));
        assert_eq!(rest_port("x REST API on http://127.0.0.1:40123 (key from flag)\n"), Some(40123));
        assert_eq!(rest_port("REST API on http://127.0.0.1:401"), None);
        assert_eq!(rest_port("nothing yet\n"), None);
    }

    #[test]
    fn base64_decodes_padded_and_refuses_other_alphabets() {
        assert_eq!(base64_decode("//A="), Some(vec![0xff, 0xf0]));
        assert_eq!(base64_decode("AAAA"), Some(vec![0, 0, 0]));
        assert_eq!(base64_decode(""), Some(vec![]));
        assert_eq!(base64_decode("a-b_"), None);
    }
}
