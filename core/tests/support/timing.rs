//! How long everything outside the engines takes.

use std::time::Duration;

use shoal_core::DiskJobKind;

/// Network, disk and tracker timing of a world.
#[derive(Clone, Debug)]
pub(crate) struct Timing {
    /// One-way latency of every link.
    pub latency: Duration,
    /// Deliver received bytes in pieces of random size up to this many bytes (`None`: whole).
    pub max_chunk: Option<usize>,
    /// Time a disk job takes.
    pub disk: Duration,
    /// Time a `Write` job takes, if not `disk` (a disk that stalls on writes only).
    pub write: Option<Duration>,
    /// Time a hash job takes.
    pub hash: Duration,
    /// Hash jobs write matching pieces themselves (as the runtimes do) instead of leaving the
    /// write to the engine.
    pub hash_writes: bool,
    /// Time the tracker takes to answer.
    pub tracker: Duration,
}

impl Timing {
    /// Time a disk job of this kind takes.
    pub(crate) fn disk_job(&self, kind: &DiskJobKind) -> Duration {
        match (kind, self.write) {
            (DiskJobKind::Write { .. }, Some(write)) => write,
            _ => self.disk,
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            latency: Duration::from_millis(5),
            max_chunk: Some(3000),
            disk: Duration::from_millis(1),
            write: None,
            hash: Duration::from_millis(1),
            hash_writes: false,
            tracker: Duration::from_millis(10),
        }
    }
}
