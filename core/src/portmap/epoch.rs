//! The gateway's epoch (seconds since it started keeping mappings), which NAT-PMP and PCP put
//! in every answer: when it runs backwards or too slowly, the gateway lost its mappings.

use crate::types::Instant;

/// The last epoch a gateway told, and when.
#[derive(Debug, Default)]
pub(crate) struct Epoch(Option<(u32, Instant)>);

impl Epoch {
    /// Records `epoch`, told at `now`; true if it says the gateway restarted since the last
    /// answer (RFC 6886 §3.6, RFC 6887 §8.5: its clock may run 1/8 slower than ours, with two
    /// seconds of slack).
    pub(crate) fn rebooted(&mut self, epoch: u32, now: Instant) -> bool {
        let Some((last, at)) = self.0.replace((epoch, now)) else { return false };
        let elapsed = (now - at).as_secs();
        let expected = u64::from(last) + elapsed * 7 / 8;
        u64::from(epoch) + 2 < expected || epoch < last
    }
}
