//! Log lines on stderr through `tracing`, filtered by `RUST_LOG`.
//!
//! The daemon logs at `info` unless `RUST_LOG` says otherwise. The CLI's own output (progress,
//! events, errors) is printed directly and stays terse: its log default is `warn`, so log lines
//! appear only when `RUST_LOG` asks for them.
//!
//! The daemon's lines also go, exactly as written on stderr, to a [`LogLines`] intake that
//! `/debug/log` reads from (its ring lives in `daemon::debug_monitor`).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_channel::{Receiver, Sender, TrySendError};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Log events that may wait for the daemon's ring to take them. Lines are logged before the
/// ring's task starts (the daemon logs its state directory, key source and limits first), and
/// a burst must not block the thread that logs: past this, lines are counted and dropped.
const INTAKE: usize = 4096;

/// Installs the subscriber; `daemon` picks the default level when `RUST_LOG` is unset and adds
/// the intake of `/debug/log` (returned; `None` for the CLI, or if a subscriber was already set).
pub fn init(daemon: bool) -> Option<LogLines> {
    let default = if daemon { "info" } else { "warn" };
    // A malformed RUST_LOG must not stop the program: its valid directives are kept, and the
    // default applies when none is.
    let filter = EnvFilter::builder().with_default_directive(default.parse().expect("a valid level")).from_env_lossy();
    let ansi = std::io::stderr().is_terminal();
    if !daemon {
        let stderr = plain().with_ansi(ansi).with_writer(std::io::stderr);
        let _ = tracing_subscriber::registry().with(filter).with(stderr).try_init();
        return None;
    }
    let (tx, rx) = async_channel::bounded(INTAKE);
    let dropped = Arc::new(AtomicU64::new(0));
    let tap = Tap { tx, dropped: dropped.clone() };
    // Without colours, one formatter writes each event to both, so the ring holds exactly the
    // lines of stderr; a terminal's colours stay out of the ring, formatted apart.
    let (both, coloured, plain_tap) = if ansi {
        (None, Some(plain().with_ansi(true).with_writer(std::io::stderr)), Some(plain().with_writer(tap)))
    } else {
        (Some(plain().with_writer(Tee(tap))), None, None)
    };
    tracing_subscriber::registry().with(filter).with(both).with(coloured).with(plain_tap).try_init().ok()?;
    Some(LogLines { rx, dropped })
}

/// A formatter without colours or targets, for any place in the stack of layers.
fn plain<S>() -> tracing_subscriber::fmt::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer().with_ansi(false).with_target(false)
}

/// The daemon's log events as they are written (one formatted event each, possibly several
/// lines), for the one task that keeps them.
pub struct LogLines {
    rx: Receiver<String>,
    dropped: Arc<AtomicU64>,
}

impl LogLines {
    /// The next event's text; `None` once no logger can send any more.
    pub async fn next(&self) -> Option<String> {
        self.rx.recv().await.ok()
    }

    /// An event already waiting, if any.
    pub fn try_next(&self) -> Option<String> {
        self.rx.try_recv().ok()
    }

    /// Events dropped since the last call because the intake was full.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

/// The writer side: every event formatted by the subscriber, sent without waiting.
#[derive(Clone)]
struct Tap {
    tx: Sender<String>,
    dropped: Arc<AtomicU64>,
}

impl<'a> MakeWriter<'a> for Tap {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> EventWriter<'a> {
        EventWriter { tap: self, buf: Vec::new() }
    }
}

/// Writes each event to the [`Tap`], then to stderr: whoever reads a line on stderr finds it
/// in the ring.
struct Tee(Tap);

impl<'a> MakeWriter<'a> for Tee {
    type Writer = TeeWriter<'a>;

    fn make_writer(&'a self) -> TeeWriter<'a> {
        TeeWriter(self.0.make_writer())
    }
}

/// One event's writer of [`Tee`].
struct TeeWriter<'a>(EventWriter<'a>);

impl std::io::Write for TeeWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TeeWriter<'_> {
    fn drop(&mut self) {
        let text = self.0.send();
        // Nowhere to report a failed write of the log itself.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    }
}

/// Collects one event's text (the formatter writes it in pieces) and sends it when dropped.
struct EventWriter<'a> {
    tap: &'a Tap,
    buf: Vec<u8>,
}

impl EventWriter<'_> {
    /// Sends the text collected so far (if any) without waiting, and returns it.
    fn send(&mut self) -> String {
        if self.buf.is_empty() {
            return String::new();
        }
        let text = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
        match self.tap.tx.try_send(text.clone()) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.tap.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        text
    }
}

impl std::io::Write for EventWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        self.send();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn each_event_is_sent_whole_and_a_full_intake_counts_drops() {
        let (tx, rx) = async_channel::bounded(1);
        let dropped = Arc::new(AtomicU64::new(0));
        let tap = Tap { tx, dropped: dropped.clone() };
        let lines = LogLines { rx, dropped };
        {
            let mut w = tap.make_writer();
            w.write_all(b"2026  INFO one ").unwrap();
            w.write_all(b"event\n").unwrap();
        }
        {
            let mut w = tap.make_writer();
            w.write_all(b"lost\n").unwrap();
        }
        assert_eq!(lines.try_next().as_deref(), Some("2026  INFO one event\n"));
        assert_eq!(lines.try_next(), None);
        assert_eq!(lines.take_dropped(), 1);
        assert_eq!(lines.take_dropped(), 0);
    }
}
