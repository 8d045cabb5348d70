//! Progress display: a bar on a terminal, plain periodic lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use shoal_core::engine::{TorrentState, TorrentStats};

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

fn eta(s: &TorrentStats) -> String {
    let left = s.wanted_bytes.saturating_sub(s.have_bytes);
    if left == 0 {
        return "0s".into();
    }
    if s.download_rate == 0 {
        return "-".into();
    }
    let secs = left / s.download_rate;
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
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
    let mut msg = format!("fetching metadata | {} peers connected, {} known", s.peers, s.candidates);
    if let Some(dht) = &s.dht {
        if dht.working {
            msg.push_str(&format!(" | DHT: {} peers found", dht.peers));
        } else {
            msg.push_str(" | DHT: joining");
        }
    }
    msg
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
    ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
        .expect("the template is valid")
        .progress_chars("=> ")
}

/// The bar's look while there is no size yet.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix} {msg}").expect("the template is valid")
}

/// How often plain lines are printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// A bar if stderr is a terminal, else plain lines.
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
        let msg = format!(
            "{} | down {}/s up {}/s | {} peers ({} seeds) | ETA {}",
            state_word(s),
            human_bytes(s.download_rate),
            human_bytes(s.upload_rate),
            s.peers,
            s.seeds,
            eta(s)
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
                    let pct =
                        if s.wanted_bytes == 0 { 100.0 } else { s.have_bytes as f64 * 100.0 / s.wanted_bytes as f64 };
                    eprintln!("{}: {pct:.1}% of {} | {msg}", s.name, human_bytes(s.wanted_bytes));
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
            None => eprintln!("{name}: fetching metadata from peers"),
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
                    eprintln!("{}: {msg}", s.name);
                }
            }
        }
    }

    /// Prints a line above the bar (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
