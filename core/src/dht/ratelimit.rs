//! Token-bucket rate limits: one for our outgoing queries, one per source IP for incoming ones.
//!
//! Levels are kept in millionths of a query so refills are exact integer arithmetic.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::types::Instant;

const UNIT: u64 = 1_000_000;

/// A token bucket allowing `rate` events per second with bursts of `burst`; a rate of 0 means
/// no limit.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: u64,
    capacity: u64,
    level: u64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let capacity = u64::from(burst.max(1)) * UNIT;
        RateLimiter { rate: u64::from(rate), capacity, level: capacity, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = (now - self.last).as_micros().min(u128::from(u64::MAX)) as u64;
        self.level = self.level.saturating_add(elapsed.saturating_mul(self.rate)).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// Takes one event's worth if available.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now);
        if self.level >= UNIT {
            self.level -= UNIT;
            true
        } else {
            false
        }
    }

    /// Whether one event's worth is available now, without taking it.
    pub fn ready(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now);
        self.level >= UNIT
    }

    /// When the next event will be allowed (now if one is available).
    pub fn next_available(&self, now: Instant) -> Instant {
        if self.rate == 0 {
            return now;
        }
        let mut probe = self.clone();
        probe.refill(now);
        if probe.level >= UNIT {
            return now;
        }
        let missing = UNIT - probe.level;
        now + Duration::from_micros(missing.div_ceil(self.rate))
    }

    /// Whether the bucket is full again (so forgetting it changes nothing).
    fn is_full(&self, now: Instant) -> bool {
        let mut probe = self.clone();
        probe.refill(now);
        probe.level >= probe.capacity
    }
}

/// One token bucket per source IP, for at most `max_tracked` addresses at a time.
#[derive(Debug, Clone)]
pub struct PerIpLimiter {
    rate: u32,
    burst: u32,
    max_tracked: usize,
    buckets: BTreeMap<IpAddr, RateLimiter>,
}

impl PerIpLimiter {
    /// No address tracked yet.
    pub fn new(rate: u32, burst: u32, max_tracked: usize) -> Self {
        PerIpLimiter { rate, burst, max_tracked: max_tracked.max(1), buckets: BTreeMap::new() }
    }

    /// Whether a query from `ip` is allowed now (and counts it).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.max_tracked {
            self.cleanup(now);
            if self.buckets.len() >= self.max_tracked {
                // Everyone tracked is busy: forget the first to stay bounded. A flood from
                // that many addresses is beyond what a per-address limit can stop anyway.
                self.buckets.pop_first();
            }
        }
        self.buckets.entry(ip).or_insert_with(|| RateLimiter::new(self.rate, self.burst, now)).try_take(now)
    }

    /// Forgets addresses whose bucket has refilled.
    pub fn cleanup(&mut self, now: Instant) {
        self.buckets.retain(|_, b| !b.is_full(now));
    }

    /// Number of addresses tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(m: u64) -> Instant {
        Instant::from_micros(m * 1000)
    }

    #[test]
    fn bucket_allows_bursts_then_the_rate() {
        let mut r = RateLimiter::new(10, 3, ms(0));
        assert!(r.try_take(ms(0)) && r.try_take(ms(0)) && r.try_take(ms(0)));
        assert!(!r.try_take(ms(0)) && !r.ready(ms(0)));
        assert_eq!(r.next_available(ms(0)), ms(100));
        assert!(!r.try_take(ms(99)));
        assert!(r.ready(ms(100)) && r.ready(ms(100)), "ready does not take");
        assert!(r.try_take(ms(100)));
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert!(r.try_take(ms(100_000)));
        }
        assert!(!r.try_take(ms(100_000)));
        let mut unlimited = RateLimiter::new(0, 0, ms(0));
        assert!((0..1000).all(|_| unlimited.try_take(ms(0))));
    }

    #[test]
    fn per_ip_limits_are_independent_and_bounded() {
        let mut l = PerIpLimiter::new(1, 2, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.allow(a, ms(0)) && l.allow(a, ms(0)));
        assert!(!l.allow(a, ms(0)));
        assert!(l.allow(b, ms(0)));
        assert!(l.allow(a, ms(1000)));
        for i in 0..100u8 {
            l.allow(IpAddr::from([10, 1, 0, i]), ms(1000));
        }
        assert!(l.tracked() <= 3);
        l.cleanup(ms(10_000));
        assert_eq!(l.tracked(), 0);
    }
}
