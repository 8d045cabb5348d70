//! Transfer-rate estimation and rate limiting on the engine's clock.

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
            // Bytes counted before the first tick have no known start: averaging them over the
            // next interval would overstate the rate (by 2x on a steady transfer).
            self.pending = 0;
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

/// Millionths of a byte per byte (tokens accrue in micro-bytes so no fraction is lost).
const MICRO: u128 = 1_000_000;

/// A token bucket enforcing a byte rate, refilled from the `now` it is given (never a clock).
///
/// The balance may go negative: a transfer larger than the balance is allowed when the balance
/// is positive, and the debt is repaid before the next one. The long-run rate is exact whatever
/// the transfer sizes, and no transfer ever waits for a balance it can never reach. Idle time
/// accrues at most [`TokenBucket::burst`] bytes.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Bytes per second; 0 means unlimited.
    rate: u64,
    /// Whole bytes that may be sent now (negative: owed).
    tokens: i64,
    /// Fraction of a byte accrued beyond `tokens`, in millionths.
    micro: u64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` bytes per second (0: unlimited).
    pub fn new(rate: u64, now: Instant) -> Self {
        let mut b = TokenBucket { rate, tokens: 0, micro: 0, last: now };
        b.tokens = b.burst();
        b
    }

    /// The limit in bytes per second; 0 when unlimited.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Whether a limit applies.
    pub fn is_limited(&self) -> bool {
        self.rate > 0
    }

    /// Most bytes idle time can save up: a tenth of a second's worth, at least 64 KiB.
    pub fn burst(&self) -> i64 {
        i64::try_from(self.rate / 10).unwrap_or(i64::MAX).max(64 * 1024)
    }

    /// Changes the limit; what accrued until `now` counts at the old rate.
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate;
        self.tokens = self.tokens.min(self.burst());
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.last {
            return;
        }
        let dt = (now - self.last).as_micros();
        self.last = now;
        if self.rate == 0 {
            return;
        }
        let accrued = u128::from(self.rate) * dt + u128::from(self.micro);
        let whole = i64::try_from(accrued / MICRO).unwrap_or(i64::MAX);
        let burst = self.burst();
        if self.tokens.saturating_add(whole) >= burst {
            self.tokens = burst;
            self.micro = 0;
        } else {
            self.tokens += whole;
            self.micro = (accrued % MICRO) as u64;
        }
    }

    /// Bytes that may be transferred now (unlimited: `i64::MAX`); ≤ 0 means wait.
    pub fn balance(&mut self, now: Instant) -> i64 {
        if self.rate == 0 {
            return i64::MAX;
        }
        self.refill(now);
        self.tokens
    }

    /// Whether a transfer may start now.
    pub fn has_tokens(&mut self, now: Instant) -> bool {
        self.balance(now) > 0
    }

    /// Records `n` bytes transferred (ignored when unlimited).
    pub fn consume(&mut self, n: u64) {
        if self.rate > 0 {
            self.tokens = self.tokens.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// When the balance will be positive again (the last refill time if it already is).
    pub fn ready_at(&self) -> Instant {
        if self.rate == 0 || self.tokens > 0 {
            return self.last;
        }
        // Micro-bytes still needed to reach a balance of one byte.
        let needed = (1 - i128::from(self.tokens)) as u128 * MICRO - u128::from(self.micro);
        let micros = needed.div_ceil(u128::from(self.rate));
        self.last + Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;

    #[test]
    fn bucket_enforces_the_long_run_rate_with_large_transfers() {
        let mut b = TokenBucket::new(100_000, Instant::ZERO);
        let mut now = Instant::ZERO;
        let mut sent = 0u64;
        // Send 30 000-byte chunks as fast as the bucket allows, for 10 s.
        while now < Instant::from_micros(10 * SEC) {
            if b.has_tokens(now) {
                b.consume(30_000);
                sent += 30_000;
            } else {
                let next = b.ready_at();
                assert!(next > now, "a wait is always in the future");
                now = next;
            }
        }
        // 10 s at 100 kB/s plus the initial burst (64 KiB) and at most one chunk of debt.
        let expected = 1_000_000 + 64 * 1024;
        assert!(sent >= expected && sent <= expected + 30_000, "sent {sent}");
    }

    #[test]
    fn bucket_saves_at_most_its_burst_and_unlimited_never_waits() {
        let mut b = TokenBucket::new(1_000_000, Instant::ZERO);
        b.consume(1_000_000);
        assert_eq!(b.balance(Instant::ZERO), 100_000 - 1_000_000);
        assert_eq!(b.ready_at(), Instant::from_micros(900_001));
        assert_eq!(b.balance(Instant::from_micros(3600 * SEC)), 100_000, "an hour idle saves a burst only");
        b.set_rate(0, Instant::from_micros(3600 * SEC));
        b.consume(u64::MAX);
        assert!(!b.is_limited() && b.has_tokens(Instant::ZERO) && b.balance(Instant::ZERO) == i64::MAX);
        // Huge rates and long gaps do not overflow.
        let mut b = TokenBucket::new(u64::MAX, Instant::ZERO);
        b.consume(u64::MAX);
        assert!(b.has_tokens(Instant::FAR_FUTURE));
    }

    #[test]
    fn bytes_before_the_first_tick_do_not_inflate_the_rate() {
        let mut r = Rate::default();
        r.add(1000);
        r.tick(Instant::from_micros(1_000_000));
        r.add(1000);
        r.tick(Instant::from_micros(2_000_000));
        assert_eq!(r.get(), 1000);
        assert_eq!(r.total(), 2000);
    }

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
