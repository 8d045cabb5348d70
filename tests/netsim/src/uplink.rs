//! A host's upload link.

use std::time::Duration;

/// How long `n` bytes take at `rate` bytes per second, in whole microseconds (rounded down).
pub fn serialisation(n: u64, rate: u64) -> Duration {
    Duration::from_micros(n * 1_000_000 / rate)
}

/// A host's upload link: it sends the bytes of all the host's connections one after another, at
/// `rate` bytes per second.
#[derive(Clone, Debug, Default)]
pub struct Uplink {
    /// Bytes per second; `None` sends instantly.
    pub rate: Option<u64>,
    /// When the last byte handed over so far has left.
    free: Duration,
}

impl Uplink {
    /// An idle uplink of `rate` bytes per second (`None`: unlimited).
    pub fn new(rate: Option<u64>) -> Self {
        Uplink { rate, free: Duration::ZERO }
    }

    /// Forgets what was queued: the link is idle from `now` (a host that restarts).
    pub fn reset(&mut self, now: Duration) {
        self.free = now;
    }

    /// Sends `n` bytes after everything handed over before; returns when their last byte has
    /// left.
    pub fn transmit(&mut self, now: Duration, n: u64) -> Duration {
        let start = self.free.max(now);
        let done = start + self.rate.map_or(Duration::ZERO, |rate| serialisation(n, rate));
        self.free = done;
        done
    }

    /// How long the link still needs for what it was handed (its send backlog).
    pub fn backlog(&self, now: Duration) -> Duration {
        self.free.max(now) - now
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Uplink;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn sends_queue_behind_each_other_at_the_rate() {
        let mut up = Uplink::new(Some(1_000_000));
        assert_eq!(up.transmit(Duration::ZERO, 1000), MS);
        assert_eq!(up.transmit(Duration::ZERO, 2000), 3 * MS, "the second send waits for the first");
        assert_eq!(up.backlog(MS), 2 * MS);
        assert_eq!(up.transmit(10 * MS, 1000), 11 * MS, "an idle link starts at once");
        assert_eq!(up.backlog(20 * MS), Duration::ZERO);
    }

    #[test]
    fn an_unlimited_link_sends_instantly_and_a_reset_forgets_the_backlog() {
        let mut up = Uplink::new(None);
        assert_eq!(up.transmit(5 * MS, 1 << 30), 5 * MS);
        let mut slow = Uplink::new(Some(1000));
        assert_eq!(slow.transmit(Duration::ZERO, 1000), 1000 * MS);
        slow.reset(2 * MS);
        assert_eq!(slow.backlog(2 * MS), Duration::ZERO);
        assert_eq!(slow.transmit(2 * MS, 1), 3 * MS);
    }
}
