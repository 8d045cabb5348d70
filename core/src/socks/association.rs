//! When to ask a proxy again for the UDP association that carries the DHT and uTP: after a
//! refused (or unanswered, [`REQUEST_TIMEOUT`]) request or an association that ended, wait,
//! doubling the wait on each failure in a row; an association that lived long enough counts
//! as working and starts the waits over.

use std::time::Duration;

/// How long the proxy has to grant an association (connection, handshake, reply) before the
/// request counts as failed: libtorrent gives its UDP tunnel's SOCKS5 connection 10 s too.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait after the first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two requests.
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// How long an association must have lived for its end not to count as one more failure in a
/// row (a proxy that grants associations and drops them at once is not asked every second).
pub const STABLE: Duration = Duration::from_secs(60);

/// The retry schedule of one association (sans-IO: durations in, durations out).
#[derive(Clone, Debug, Default)]
pub struct Reassociate {
    /// Failures since the last association that lived [`STABLE`] or longer.
    failures: u32,
}

impl Reassociate {
    /// A schedule with no failure yet.
    pub fn new() -> Reassociate {
        Reassociate::default()
    }

    /// The request for an association failed: how long to wait before the next.
    pub fn failed(&mut self) -> Duration {
        let wait = FIRST_RETRY.saturating_mul(1 << self.failures.min(16)).min(MAX_RETRY);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    /// An association ended after it lived `lived`: how long to wait before the next request.
    pub fn ended(&mut self, lived: Duration) -> Duration {
        if lived >= STABLE {
            self.failures = 0;
        }
        self.failed()
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_minute_and_start_over_after_a_stable_association() {
        let mut r = Reassociate::new();
        let waits: Vec<u64> = (0..9).map(|_| r.failed().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // A short-lived association is one more failure.
        assert_eq!(r.ended(Duration::from_secs(5)), MAX_RETRY);
        // One that worked for a while: the next wait is the first again.
        assert_eq!(r.ended(STABLE), FIRST_RETRY);
        assert_eq!(r.failures(), 1);
        // Thousands of failures neither overflow nor exceed the cap.
        for _ in 0..10_000 {
            assert!(r.failed() <= MAX_RETRY);
        }
    }
}
