//! Transfer-rate estimation on the engine's clock.

use crate::types::Instant;
use std::time::Duration;

/// A byte rate averaged over a few seconds, updated on the engine's once-a-second tick.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    pending: u64,
    rate: f64,
    last: Option<Instant>,
    total: u64,
}

impl Rate {
    /// Counts `n` transferred bytes.
    pub fn add(&mut self, n: u64) {
        self.pending += n;
        self.total += n;
    }

    /// Folds the bytes counted since the last tick into the average.
    pub fn tick(&mut self, now: Instant) {
        let Some(last) = self.last.replace(now) else {
            return;
        };
        let dt = (now - last).max(Duration::from_millis(1)).as_secs_f64();
        let instant = self.pending as f64 / dt;
        // Weight the newest second heavily so request queues grow fast on a fast link.
        self.rate = if self.rate == 0.0 { instant } else { 0.6 * instant + 0.4 * self.rate };
        self.pending = 0;
    }

    /// Bytes per second.
    pub fn get(&self) -> u64 {
        self.rate as u64
    }

    /// Bytes counted since creation.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_follows_traffic() {
        let mut r = Rate::default();
        r.tick(Instant::ZERO);
        r.add(1000);
        r.tick(Instant::from_micros(1_000_000));
        assert_eq!(r.get(), 1000);
        r.tick(Instant::from_micros(2_000_000));
        assert!(r.get() < 1000);
        assert_eq!(r.total(), 1000);
    }
}
