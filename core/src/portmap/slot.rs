//! One wanted mapping on one gateway protocol: its state, the timer that moves it on, and the
//! retry backoff shared by NAT-PMP, PCP and UPnP.

use std::time::Duration;

use crate::types::Instant;

use super::cx::Cx;
use super::output::{PortMapEvent, PortMapOutput};
use super::protocol::{Protocol, Via};
use super::state::MappingState;

/// First wait before a failed mapping (or discovery) is tried again.
pub(crate) const RETRY_MIN: Duration = Duration::from_secs(30);
/// Longest wait between retries: a gateway that comes back is used within this.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(30 * 60);

/// The wait after `failures` failures in a row: [`RETRY_MIN`] doubled each time, at most
/// [`RETRY_MAX`].
pub(crate) fn backoff(failures: u32) -> Duration {
    RETRY_MIN.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(RETRY_MAX)
}

/// When a mapping of `lifetime` is renewed: halfway (RFC 6886 §3.3), but never sooner than
/// [`RETRY_MIN`], so a gateway granting one-second leases cannot make us send every second.
pub(crate) fn renew_after(lifetime: Duration) -> Duration {
    (lifetime / 2).max(RETRY_MIN)
}

/// A mapping's progress on one protocol.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) state: MappingState,
    /// When to act next: resend, retry or renew (`None`: nothing to do until an answer).
    pub(crate) wake: Option<Instant>,
    /// Sends of the request now out (NAT-PMP resends until an answer).
    pub(crate) attempt: u32,
    /// Failures in a row, for [`backoff`].
    pub(crate) failures: u32,
    /// Whether a mapping was made before (an answer is then a renewal).
    pub(crate) mapped_before: bool,
}

impl Slot {
    pub(crate) fn new() -> Slot {
        Slot { state: MappingState::Pending, wake: None, attempt: 0, failures: 0, mapped_before: false }
    }

    /// Marks a failure: retried after the backoff.
    pub(crate) fn fail(&mut self, error: String, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.attempt = 0;
        self.wake = Some(now + backoff(self.failures));
        self.state = MappingState::Failed { error };
    }

    /// Marks a mapping made for `lifetime` (`None`: no expiry): renewed halfway.
    pub(crate) fn mapped(&mut self, external_port: u16, lifetime: Option<Duration>, now: Instant) {
        self.failures = 0;
        self.attempt = 0;
        self.mapped_before = true;
        self.wake = lifetime.map(|l| now + renew_after(l));
        self.state = MappingState::Mapped { external_port, expires: lifetime.map(|l| now + l) };
    }

    /// Whether this slot is waiting for the answer to a removal.
    pub(crate) fn removing(&self) -> bool {
        matches!(self.state, MappingState::Removing)
    }

    /// The external port while mapped.
    pub(crate) fn external_port(&self) -> Option<u16> {
        match self.state {
            MappingState::Mapped { external_port, .. } => Some(external_port),
            _ => None,
        }
    }
}

/// A removal of `mapping` by `via` is over (answered or not): the slot is done.
pub(crate) fn removed(
    via: Via,
    slot: &mut Slot,
    (protocol, internal_port): (Protocol, u16),
    error: Option<String>,
    cx: &mut Cx<'_>,
) {
    slot.state = MappingState::Removed;
    slot.wake = None;
    cx.push(PortMapOutput::Event(PortMapEvent::Removed { via, protocol, internal_port, error }));
}

/// A request by `via` for `mapping` ended without a mapping: a removal is over, a mapping
/// failed (and is retried later).
pub(crate) fn ended(via: Via, slot: &mut Slot, mapping: (Protocol, u16), error: String, cx: &mut Cx<'_>) {
    if slot.removing() {
        return removed(via, slot, mapping, Some(error), cx);
    }
    slot.fail(error.clone(), cx.now);
    let (protocol, internal_port) = mapping;
    cx.push(PortMapOutput::Event(PortMapEvent::Failed { via, protocol, internal_port, error }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(7), RETRY_MAX);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
        assert_eq!(renew_after(Duration::from_secs(7200)), Duration::from_secs(3600));
        assert_eq!(renew_after(Duration::from_secs(1)), RETRY_MIN);
    }
}
