//! Progress display: a bar on a terminal, plain periodic lines otherwise.
//!
//! The caller feeds it the torrent's figures once a second ([`Progress::update`]), from one
//! interval timer that events do not reset; a bar redraws on each update, plain output prints
//! a line every [`LINE_EVERY`].

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use shoal_core::{TorrentState, TorrentStats};

/// Bytes as a short human figure (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Writes one line to stderr. A closed stderr (`shoal … 2>&1 | head`) loses the line instead
/// of panicking, as `eprintln!` would.
pub fn eprint_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// `1 peer`, `3 peers`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// A duration as `1h02m`, `3m05s` or `42s`.
pub fn human_duration(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

fn eta(s: &TorrentStats) -> String {
    let left = s.wanted_bytes.saturating_sub(s.have_bytes);
    if left == 0 {
        return "0s".into();
    }
    if s.download_rate == 0 {
        return "-".into();
    }
    human_duration(left / s.download_rate)
}

fn state_word(s: &TorrentStats) -> String {
    match &s.state {
        TorrentState::Metadata => "fetching metadata".into(),
        TorrentState::CheckQueued => "queued for checking".into(),
        TorrentState::Checking { progress } => format!("checking {:.0}%", progress * 100.0),
        TorrentState::Downloading => "downloading".into(),
        TorrentState::Seeding => "seeding".into(),
        TorrentState::Paused => "paused".into(),
        TorrentState::Error(e) => format!("error: {e}"),
    }
}

/// What a magnet shows until its metadata arrives: who it is asking, not a size.
fn metadata_message(s: &TorrentStats) -> String {
    let mut msg = format!("fetching metadata | {} connected, {} known", count(s.peers, "peer"), s.candidates);
    if let Some(dht) = &s.dht {
        if dht.working {
            msg.push_str(&format!(" | DHT: {} peers found", dht.peers));
        } else {
            msg.push_str(" | DHT: joining");
        }
    }
    msg
}

/// The periodic line of plain output: verified bytes (exact, for scripts), share and figures.
fn plain_line(s: &TorrentStats, msg: &str) -> String {
    let pct = if s.wanted_bytes == 0 { 100.0 } else { s.have_bytes as f64 * 100.0 / s.wanted_bytes as f64 };
    format!(
        "{}: {} of {} ({pct:.1}%, {} of {} bytes) | {msg}",
        s.name,
        human_bytes(s.have_bytes),
        human_bytes(s.wanted_bytes),
        s.have_bytes,
        s.wanted_bytes
    )
}

/// Shows a torrent's progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
    /// Whether the bar shows the metadata spinner (a magnet's first phase) rather than bytes.
    spinner: bool,
}

/// The bar's look while bytes are counted.
fn bar_style() -> ProgressStyle {
    // `wide_msg` takes the width that is left and is cut there: a line wider than the terminal
    // would wrap, and the bar's redraw would then leave the wrapped half behind.
    ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {bytes}/{total_bytes} {wide_msg}")
        .expect("the template is valid")
        .progress_chars("=> ")
}

/// The bar's look while there is no size yet.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix} {wide_msg}").expect("the template is valid")
}

/// How often plain lines are printed when stderr is not a terminal (the README promises 5 s).
const LINE_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// A bar if stderr is a terminal, else plain lines (the first at the first update).
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(bar_style());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, last_line: None, spinner: false }
    }

    /// Shows the latest figures.
    pub fn update(&mut self, s: &TorrentStats) {
        if s.state == TorrentState::Metadata {
            return self.update_metadata(s);
        }
        if let Some(bar) = self.bar.as_ref().filter(|_| self.spinner) {
            bar.set_style(bar_style());
            self.spinner = false;
        }
        // Most telling first: a narrow terminal cuts the end of the line.
        let msg = format!(
            "{} | down {}/s up {}/s | ETA {} | {} ({} seed{})",
            state_word(s),
            human_bytes(s.download_rate),
            human_bytes(s.upload_rate),
            eta(s),
            count(s.peers, "peer"),
            s.seeds,
            if s.seeds == 1 { "" } else { "s" },
        );
        match &self.bar {
            Some(bar) => {
                bar.set_length(s.wanted_bytes);
                bar.set_position(s.have_bytes);
                bar.set_prefix(s.name.clone());
                bar.set_message(msg);
            }
            None => {
                if self.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY) {
                    self.last_line = Some(Instant::now());
                    eprint_line(&plain_line(s, &msg));
                }
            }
        }
    }

    /// Says that a magnet's metadata is being fetched, before the first figures come.
    pub fn fetching_metadata(&mut self, name: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_style(spinner_style());
                self.spinner = true;
                bar.set_prefix(name.to_string());
                bar.set_message("fetching metadata");
            }
            None => eprint_line(&format!("{name}: fetching metadata from peers")),
        }
    }

    /// Shows a magnet that is still fetching its metadata.
    fn update_metadata(&mut self, s: &TorrentStats) {
        let msg = metadata_message(s);
        match &self.bar {
            Some(bar) => {
                if !self.spinner {
                    bar.set_style(spinner_style());
                    self.spinner = true;
                }
                bar.set_prefix(s.name.clone());
                bar.set_message(msg);
            }
            None => {
                if self.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY) {
                    self.last_line = Some(Instant::now());
                    eprint_line(&format!("{}: {msg}", s.name));
                }
            }
        }
    }

    /// Prints a line above the bar (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprint_line(line),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
