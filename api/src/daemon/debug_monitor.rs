//! The one task that keeps what `/debug` reports over time: the daemon's CPU and memory
//! history, sampled every [`SAMPLE_EVERY`] (Tribler's `resource_monitor.poll_interval`), and
//! the ring of its latest log lines.
//!
//! The task owns both rings; handlers ask it through a channel ([`Monitor`]), so nothing is
//! locked, and the loggers of every thread hand it lines without waiting
//! ([`crate::logging::LogLines`]). A sample reads `/proc/self/stat`, `statm` and `/proc/uptime`:
//! a few hundred bytes every five seconds.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_channel::{Receiver, Sender};
use futures_lite::future;

use super::debug_proc;
use crate::logging::LogLines;
use crate::rt::{Rt, Task};

/// How often CPU and memory are sampled (Tribler's default `poll_interval`, which its GUI's
/// plots assume).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples kept: the last hour.
pub const HISTORY: usize = 720;

/// Log lines kept for `/debug/log`, and the most bytes they may take together: enough for a
/// busy hour at `info`, bounded whatever `RUST_LOG` says.
const LOG_LINES: usize = 10_000;
const LOG_BYTES: usize = 4 << 20;

/// Queries waiting for the task (handlers wait their turn beyond this).
const QUERIES: usize = 64;

/// One sample of the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// CPU used since the previous sample, in percent of one core (above 100 when several
    /// threads are busy), one decimal, as psutil's `cpu_percent()` gives it.
    pub cpu: f64,
    /// Resident memory in bytes.
    pub mem: u64,
}

/// The latest samples, oldest first, at most `cap`.
#[derive(Debug)]
pub struct History {
    samples: VecDeque<Sample>,
    cap: usize,
}

impl History {
    /// An empty history keeping at most `cap` samples.
    pub fn new(cap: usize) -> History {
        History { samples: VecDeque::with_capacity(cap), cap }
    }

    /// Adds a sample, forgetting the oldest when full.
    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// Adds the sample if there is one.
    fn extend_from(&mut self, s: Option<Sample>) {
        if let Some(s) = s {
            self.push(s);
        }
    }

    /// Every sample kept, oldest first.
    pub fn to_vec(&self) -> Vec<Sample> {
        self.samples.iter().copied().collect()
    }
}

/// CPU seconds used over `wall` seconds, in percent of one core with one decimal.
pub fn cpu_percent(cpu_seconds: f64, wall_seconds: f64) -> f64 {
    if wall_seconds <= 0.0 || !cpu_seconds.is_finite() {
        return 0.0;
    }
    (cpu_seconds.max(0.0) / wall_seconds * 1000.0).round() / 10.0
}

/// The latest log lines, bounded in count and bytes.
#[derive(Debug)]
pub struct LogRing {
    lines: VecDeque<Box<str>>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
}

impl LogRing {
    /// An empty ring keeping at most `max_lines` lines and `max_bytes` bytes of text.
    pub fn new(max_lines: usize, max_bytes: usize) -> LogRing {
        LogRing { lines: VecDeque::new(), bytes: 0, max_lines, max_bytes }
    }

    /// Adds the lines of one logged event (its trailing newline ends the last line). A line
    /// longer than the whole ring keeps only its start.
    pub fn push_event(&mut self, text: &str) {
        for line in text.lines() {
            let mut end = line.len().min(self.max_bytes);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            let line = &line[..end];
            while !self.lines.is_empty()
                && (self.lines.len() >= self.max_lines || self.bytes + line.len() > self.max_bytes)
            {
                if let Some(old) = self.lines.pop_front() {
                    self.bytes -= old.len();
                }
            }
            self.bytes += line.len();
            self.lines.push_back(line.into());
        }
    }

    /// The last `n` lines joined by newlines (no trailing one), as Tribler's `tail()` gives
    /// them.
    pub fn tail(&self, n: usize) -> String {
        let skip = self.lines.len().saturating_sub(n);
        let mut out = String::new();
        for (i, line) in self.lines.iter().skip(skip).enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(line);
        }
        out
    }
}

/// What a handler can ask the task.
enum Query {
    History(Sender<Vec<Sample>>),
    Log(usize, Sender<String>),
}

/// The handle handlers hold; the task ends when every handle is gone.
#[derive(Clone)]
pub struct Monitor {
    queries: Sender<Query>,
}

impl Monitor {
    /// Starts the task on `rt`, taking the daemon's log lines if there are any.
    pub fn start(lines: Option<LogLines>, rt: Rt) -> (Monitor, Task) {
        let (tx, rx) = async_channel::bounded(QUERIES);
        (Monitor { queries: tx }, rt.spawn(run(rx, lines, rt)))
    }

    /// The CPU and memory samples, oldest first (empty if the task has ended).
    pub async fn history(&self) -> Vec<Sample> {
        let (tx, rx) = async_channel::bounded(1);
        if self.queries.send(Query::History(tx)).await.is_err() {
            return Vec::new();
        }
        rx.recv().await.unwrap_or_default()
    }

    /// The last `n` log lines, joined by newlines.
    pub async fn log_tail(&self, n: usize) -> String {
        let (tx, rx) = async_channel::bounded(1);
        if self.queries.send(Query::Log(n, tx)).await.is_err() {
            return String::new();
        }
        rx.recv().await.unwrap_or_default()
    }
}

/// What woke the task.
enum Wake {
    Tick,
    Query(Option<Query>),
    Log(Option<String>),
}

/// Takes CPU and memory samples and compares each with the one before.
struct Sampler {
    last: Option<(Instant, f64)>,
    /// The last error reported, so that a failing `/proc` is logged once, not every 5 s.
    last_error: Option<String>,
}

impl Sampler {
    /// A sample now. The first one's CPU is the average since the process started, the next
    /// ones' the use since the previous sample.
    fn sample(&mut self) -> Option<Sample> {
        let usage = match debug_proc::usage() {
            Ok(u) => u,
            Err(e) => {
                let e = e.to_string();
                if self.last_error.as_ref() != Some(&e) {
                    tracing::warn!("cannot sample the daemon's CPU and memory: {e}");
                    self.last_error = Some(e);
                }
                return None;
            }
        };
        let now = Instant::now();
        let cpu = match self.last {
            Some((then, cpu)) => cpu_percent(usage.cpu_seconds - cpu, now.duration_since(then).as_secs_f64()),
            None => cpu_percent(usage.cpu_seconds, usage.age_seconds),
        };
        self.last = Some((now, usage.cpu_seconds));
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        Some(Sample { time, cpu, mem: usage.rss_bytes })
    }
}

async fn run(queries: Receiver<Query>, mut lines: Option<LogLines>, rt: Rt) {
    let mut history = History::new(HISTORY);
    let mut log = LogRing::new(LOG_LINES, LOG_BYTES);
    let mut sampler = Sampler { last: None, last_error: None };
    history.extend_from(sampler.sample());
    let mut next_sample = Instant::now() + SAMPLE_EVERY;
    loop {
        let tick = async {
            rt.sleep_until(next_sample).await;
            Wake::Tick
        };
        let query = async { Wake::Query(queries.recv().await.ok()) };
        let line = async {
            match &lines {
                Some(l) => Wake::Log(l.next().await),
                None => future::pending().await,
            }
        };
        // Queries and samples first: a flood of log lines (RUST_LOG=trace) must not starve them.
        match future::or(query, future::or(tick, line)).await {
            Wake::Tick => {
                next_sample += SAMPLE_EVERY;
                history.extend_from(sampler.sample());
            }
            Wake::Query(Some(Query::History(reply))) => {
                let _ = reply.try_send(history.to_vec());
            }
            Wake::Query(Some(Query::Log(n, reply))) => {
                // Every line logged before the question is in the answer.
                if let Some(l) = &lines {
                    while let Some(text) = l.try_next() {
                        take(&mut log, l, &text);
                    }
                }
                let _ = reply.try_send(log.tail(n));
            }
            // Every handle is gone: the daemon is stopping.
            Wake::Query(None) => return,
            Wake::Log(Some(text)) => {
                if let Some(l) = &lines {
                    take(&mut log, l, &text);
                }
            }
            Wake::Log(None) => lines = None,
        }
    }
}

/// Keeps one logged event, after a note of the events the intake had to drop.
fn take(log: &mut LogRing, lines: &LogLines, text: &str) {
    let dropped = lines.take_dropped();
    if dropped > 0 {
        log.push_event(&format!("({dropped} log events were dropped here: they came faster than this ring took them)"));
    }
    log.push_event(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_latest() {
        let mut h = History::new(3);
        for i in 0..5 {
            h.push(Sample { time: i as f64, cpu: 0.0, mem: i });
        }
        assert_eq!(h.to_vec().iter().map(|s| s.mem).collect::<Vec<_>>(), vec![2, 3, 4]);
    }

    #[test]
    fn cpu_percent_is_of_one_core_with_one_decimal() {
        assert_eq!(cpu_percent(0.25, 5.0), 5.0);
        assert_eq!(cpu_percent(0.0123, 1.0), 1.2);
        assert_eq!(cpu_percent(10.0, 5.0), 200.0);
        assert_eq!(cpu_percent(1.0, 0.0), 0.0);
        assert_eq!(cpu_percent(-1.0, 5.0), 0.0);
    }

    #[test]
    fn log_ring_is_bounded_by_lines_and_bytes() {
        let mut r = LogRing::new(3, 1000);
        r.push_event("a\nb\n");
        r.push_event("c\n");
        r.push_event("d\n");
        assert_eq!(r.tail(10), "b\nc\nd");
        assert_eq!(r.tail(2), "c\nd");
        assert_eq!(r.tail(0), "");
        let mut r = LogRing::new(100, 10);
        r.push_event("12345\n");
        r.push_event("67890\n");
        r.push_event("abc\n");
        assert_eq!(r.tail(10), "67890\nabc");
        // A line longer than the ring keeps its start, cut on a character boundary.
        r.push_event("ééééééé\n");
        assert_eq!(r.tail(10), "ééééé");
    }
}
