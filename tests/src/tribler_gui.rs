//! Tribler's stock GUI (PyPI `tribler==7.13.1`, PyQt5) as a real client of `shoal daemon`: its
//! Python venv, and runs of `scripts/tribler_gui.py` (the launcher that attaches the GUI to our
//! core and watches it from inside) under Xvfb.
//!
//! The venv lives outside the checkout (`scripts/test.sh` creates it, as root, with the Debian
//! packages Qt needs). The launcher judges the run itself and writes a JSON report; see the
//! docstring of `scripts/tribler_gui.py` for what it records and when it exits 0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::proc::Proc;
use crate::workdir::TestDir;

/// Where `scripts/test.sh` installs the venv (overridden by `SHOAL_TRIBLER_VENV`).
pub const DEFAULT_VENV: &str = "/var/cache/shoal-tests/tribler-venv-7.13.1";

/// How long a run lasts unless `SHOAL_TRIBLER_GUI_SECS` says otherwise: the ten minutes of
/// issue #14's acceptance.
pub const DEFAULT_RUN: Duration = Duration::from_secs(600);

/// How long the GUI may take to receive `events_start` (it starts in ~3 s here).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(90);

/// Time for the launcher beyond its run: Xvfb and Python start-up, screenshot, report.
const EXIT_MARGIN: Duration = Duration::from_secs(120);

/// The Xvfb screen: large enough for the GUI's main window (1070×800).
const SCREEN: &str = "-screen 0 1280x800x24 -nolisten tcp";

/// A Tribler GUI that can be run: the Python of its venv.
pub struct TriblerGui {
    python: PathBuf,
}

/// What one run of the launcher asks for.
pub struct RunOptions {
    /// How long the GUI runs after start-up.
    pub duration: Duration,
    /// A download (hex info-hash) the downloads page must show; it is selected once shown.
    pub expect_infohash: Option<String>,
    /// Path prefixes whose non-200 answers (and the GUI's "Request error" dialogs for them) are
    /// listed but not failures.
    pub allow_non_200: Vec<String>,
    /// A word to type in the search bar, and the torrent (hex info-hash) its results must show.
    pub search: Option<(String, String)>,
    /// A search result (hex info-hash) whose health cell to click, and the seeders its tracker
    /// reports, which the row must then show.
    pub health: Option<(String, u64)>,
    /// A tag to add with the GUI's tag editor, and the search result (hex info-hash) to add it to.
    pub tag: Option<(String, String)>,
}

/// The outcome of a run.
pub struct GuiRun {
    /// The launcher's exit status (0: every check of the launcher held).
    pub status: ExitStatus,
    /// The launcher's JSON report, if it got as far as writing it.
    pub report: Option<Value>,
    /// The launcher's own lines (its log and summary), without Tribler's logging.
    pub summary: String,
    /// Where the final screenshot is (if the launcher saved it).
    pub screenshot: PathBuf,
    /// Where the flows saved their screenshots (`<flow step>.png`).
    pub shots_dir: PathBuf,
    /// The tails of the launcher's stdout and stderr.
    pub logs: String,
}

impl TriblerGui {
    /// The GUI of the venv named by `SHOAL_TRIBLER_VENV` (default [`DEFAULT_VENV`]), if its
    /// Python imports Tribler's GUI and PyQt5 and `xvfb-run` exists; `Err` says what is missing
    /// and how to get it.
    pub fn find() -> Result<TriblerGui, String> {
        let venv = std::env::var_os("SHOAL_TRIBLER_VENV").map_or_else(|| PathBuf::from(DEFAULT_VENV), PathBuf::from);
        let python = venv.join("bin").join("python");
        let fix = "run `bash scripts/test.sh` as root once (it installs the Debian packages and creates \
                   the venv with a Python 3.8/3.9), or point SHOAL_TRIBLER_VENV at such a venv";
        if !python.is_file() {
            return Err(format!("no Tribler GUI venv at {}: {fix}", venv.display()));
        }
        let check = Command::new(&python)
            .args(["-c", "import PyQt5.QtWidgets, tribler.gui.tribler_window"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        if !check.status.success() {
            return Err(format!(
                "the venv at {} cannot import Tribler's GUI: {}\n{fix}",
                venv.display(),
                String::from_utf8_lossy(&check.stderr).trim()
            ));
        }
        let xvfb = Command::new("sh").args(["-c", "command -v xvfb-run"]).stdout(Stdio::null()).status();
        if !xvfb.is_ok_and(|s| s.success()) {
            return Err(format!("xvfb-run is missing (Debian package xvfb): {fix}"));
        }
        Ok(TriblerGui { python })
    }

    /// Runs the GUI against `daemon` under a fresh Xvfb for `opts.duration`, with its state
    /// (`TSTATEDIR`, `HOME`) in `td`, and returns what the launcher found. Panics (with the
    /// launcher's logs) only if it does not exit in time.
    pub fn run(&self, td: &TestDir, daemon: &Daemon, opts: &RunOptions) -> GuiRun {
        let report_path = td.join("tribler-gui/report.json");
        let screenshot = td.join("tribler-gui/screenshot.png");
        let home = td.dir("tribler-gui/home");
        let shots_dir = td.dir("tribler-gui/shots");
        let mut cmd = Command::new("xvfb-run");
        cmd.args(["-a", "-s", SCREEN]).arg(&self.python).arg(launcher());
        cmd.arg("--duration").arg(opts.duration.as_secs_f64().to_string());
        cmd.arg("--connect-timeout").arg(CONNECT_TIMEOUT.as_secs().to_string());
        cmd.arg("--report").arg(&report_path).arg("--screenshot").arg(&screenshot);
        cmd.arg("--shots-dir").arg(&shots_dir);
        if let Some(ih) = &opts.expect_infohash {
            cmd.args(["--expect-infohash", ih]);
        }
        if let Some((word, ih)) = &opts.search {
            cmd.args(["--search-word", word, "--search-infohash", ih]);
        }
        if let Some((ih, seeders)) = &opts.health {
            cmd.args(["--health-infohash", ih, "--health-seeders", &seeders.to_string()]);
        }
        if let Some((tag, ih)) = &opts.tag {
            cmd.args(["--tag", tag, "--tag-infohash", ih]);
        }
        for prefix in &opts.allow_non_200 {
            cmd.args(["--allow-non-200", prefix]);
        }
        cmd.env("CORE_API_PORT", daemon.port().to_string())
            .env("CORE_API_KEY", daemon.key())
            .env("TSTATEDIR", td.dir("tribler-gui/state"))
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("QT_QPA_PLATFORM", "xcb")
            .env("PYTHONUNBUFFERED", "1");
        for var in ["DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "PYTHONPATH", "PYTHONHOME"] {
            cmd.env_remove(var);
        }
        let mut proc = Proc::spawn("tribler_gui", cmd, &td.logs(), Duration::from_secs(5));
        let timeout = opts.duration + CONNECT_TIMEOUT + EXIT_MARGIN;
        let status = proc.wait_exit(timeout).unwrap_or_else(|e| panic!("{e}\n{}", proc.logs()));
        let report = std::fs::read(&report_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let summary = proc.stdout().lines().filter(|l| l.starts_with("[tribler_gui")).collect::<Vec<_>>().join("\n");
        GuiRun { status, report, summary, screenshot, shots_dir, logs: proc.logs() }
    }
}

/// `scripts/tribler_gui.py`
pub fn launcher() -> PathBuf {
    crate::workdir::package_dir().join("scripts").join("tribler_gui.py")
}

/// How long a run lasts: `SHOAL_TRIBLER_GUI_SECS` seconds, else [`DEFAULT_RUN`].
pub fn run_duration() -> Duration {
    match std::env::var("SHOAL_TRIBLER_GUI_SECS") {
        Ok(s) => Duration::from_secs(
            s.trim().parse().unwrap_or_else(|_| panic!("SHOAL_TRIBLER_GUI_SECS={s:?} is not a number of seconds")),
        ),
        Err(_) => DEFAULT_RUN,
    }
}

/// Reports a missing prerequisite of a real-client test: in CI (`CI` set and not empty) that is
/// a failure, since `scripts/test.sh` installs everything there; elsewhere the test is skipped
/// with a banner nobody can miss.
pub fn missing(test: &str, why: &str) {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let banner = "!".repeat(100);
    let verdict = if ci { "FAILED (CI must run it)" } else { "SKIPPED" };
    let text = format!("\n{banner}\n!!! {test} {verdict}: {why}\n{banner}\n");
    if ci {
        panic!("{text}");
    }
    // Straight to fd 2: the test harness captures `eprintln!` of passing tests, and a skip
    // nobody sees is how a test silently stops running.
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The run's screenshots (the flows' and the screen's at the end, as `screen-at-end.png`),
/// copied into `dir`, where they survive the test's temp dir. Returns the copies' paths, or why
/// one could not be copied.
pub fn keep_screenshots(run: &GuiRun, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut shots = vec![(run.screenshot.clone(), dir.join("screen-at-end.png"))];
    let listed = std::fs::read_dir(&run.shots_dir).map_err(|e| format!("cannot list {}: {e}", run.shots_dir.display()));
    for entry in listed?.flatten() {
        shots.push((entry.path(), dir.join(entry.file_name())));
    }
    let mut kept = Vec::new();
    for (from, to) in shots {
        if from.is_file() {
            std::fs::copy(&from, &to)
                .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
            kept.push(to);
        }
    }
    kept.sort();
    Ok(kept)
}
