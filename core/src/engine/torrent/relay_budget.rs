//! What a relay allows one peer in BEP 55 hole punching: a bounded number of rendezvous per
//! minute (see `holepunch`).

use std::time::Duration;

use crate::types::Instant;

/// The window a relay counts one peer's rendezvous in.
const RELAY_WINDOW: Duration = Duration::from_secs(60);

/// How many rendezvous a relay does for one peer per [`RELAY_WINDOW`]: an honest initiator
/// asks once per target per window (see `PeerList::rendezvous`) and we can introduce it to at
/// most our peers, so more is a peer using us to send messages for it. The rest is ignored
/// (no error either: an answer would be traffic it makes us send).
pub(super) fn relay_limit(max_peers: usize) -> u32 {
    u32::try_from(max_peers).unwrap_or(u32::MAX)
}

/// Rendezvous one peer asked us for in the current window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RelayBudget {
    since: Option<Instant>,
    used: u32,
}

impl RelayBudget {
    /// Takes one rendezvous at `now` if fewer than `limit` were taken this window.
    pub(super) fn take(&mut self, now: Instant, limit: u32) -> bool {
        if self.since.is_none_or(|at| now - at >= RELAY_WINDOW) {
            *self = RelayBudget { since: Some(now), used: 0 };
        }
        if self.used >= limit {
            return false;
        }
        self.used += 1;
        true
    }
}
