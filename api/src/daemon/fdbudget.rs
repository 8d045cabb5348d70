//! File descriptors: the soft `RLIMIT_NOFILE` is raised to the hard limit at start, and the
//! result is shared out so that peers can never take the descriptors that checkpoints, the
//! downloads' files and the REST API need (systemd's default soft limit is 1024).

/// Descriptors for everything else the process holds: stdio, listeners, the poller, the state
/// lock, tracker/DHT/LSD sockets, `file:` URIs being read.
const RESERVED_BASE: u64 = 64;
/// Checkpoint writes (temporary file and directory fsync each) and resume data reads.
const RESERVED_CHECKPOINTS: u64 = 32;
/// The downloads' open data files.
const RESERVED_STORE: u64 = 256;
/// REST connections never exceed this, whatever the limit.
const MAX_REST: u64 = 256;
/// REST connections always allowed, however low the limit.
const MIN_REST: u64 = 16;

/// How the descriptor limit is shared out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft `RLIMIT_NOFILE` in force.
    pub limit: u64,
    /// Concurrent REST connections (including `/events` streams).
    pub rest: usize,
    /// What is left for peer connections, established and pending (the engine's share).
    pub engine: usize,
}

impl FdBudget {
    /// The shares of `limit` descriptors: the reserves first, then a quarter of the rest (at
    /// most [`MAX_REST`]) for REST, and everything else for the engine.
    pub fn from_limit(limit: u64) -> FdBudget {
        let free = limit.saturating_sub(RESERVED_BASE + RESERVED_CHECKPOINTS + RESERVED_STORE);
        let rest = (free / 4).clamp(MIN_REST, MAX_REST);
        let engine = free.saturating_sub(rest);
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        FdBudget { limit, rest: to_usize(rest), engine: to_usize(engine) }
    }
}

/// Raises the soft descriptor limit to the hard one and returns the budget of the limit in
/// force (the old one if raising fails, with a warning).
pub fn raise_and_budget() -> FdBudget {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let mut soft = current.current;
    if current.current != current.maximum {
        let raised = Rlimit { current: current.maximum, maximum: current.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = current.maximum,
            Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
        }
    }
    // `None` is unlimited; such a process still has a kernel-wide cap, so count it as large.
    FdBudget::from_limit(soft.unwrap_or(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares() {
        let b = FdBudget::from_limit(1024);
        assert_eq!((b.rest, b.engine), (168, 504));
        assert!(b.rest as u64 + b.engine as u64 + 352 <= 1024);
        assert_eq!(FdBudget::from_limit(1 << 20).rest, 256);
        let tiny = FdBudget::from_limit(100);
        assert_eq!((tiny.rest, tiny.engine), (16, 0));
    }
}
