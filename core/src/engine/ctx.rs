//! What a torrent works with while it handles an input: the time, the configuration, the
//! outbox it writes into and the session-wide budgets it draws from.

use super::config::Config;
use super::limits::SessionLimits;
use super::outbox::Outbox;
use crate::types::Instant;

/// The engine's context for one input, lent to the torrent that handles it.
pub(crate) struct Ctx<'a> {
    /// The time of the input.
    pub now: Instant,
    /// The session's configuration.
    pub cfg: &'a Config,
    /// Where outputs, job ids and closed connections go.
    pub out: &'a mut Outbox,
    /// Dial and check slots, rate limits and spare buffers shared with the other torrents.
    pub limits: &'a mut SessionLimits,
}
