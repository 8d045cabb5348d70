//! Log lines on stderr through `tracing`, filtered by `RUST_LOG`.
//!
//! The daemon logs at `info` unless `RUST_LOG` says otherwise. The CLI's own output (progress,
//! events, errors) is printed directly and stays terse: its log default is `warn`, so log lines
//! appear only when `RUST_LOG` asks for them.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; `daemon` picks the default level when `RUST_LOG` is unset.
pub fn init(daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    // A malformed RUST_LOG must not stop the program: its valid directives are kept, and the
    // default applies when none is.
    let filter = EnvFilter::builder().with_default_directive(default.parse().expect("a valid level")).from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
