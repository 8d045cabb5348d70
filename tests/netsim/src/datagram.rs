//! Datagram paths (UDP-like: unordered, unreliable) and the bottleneck queue flows share.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;

use crate::uplink::serialisation;

/// What one direction of a datagram path does to each datagram. Draws come from the caller's
/// RNG in a fixed order per datagram (loss, then duplication, then one jitter per copy), so a
/// world with one seeded RNG replays exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DatagramPath {
    /// Fixed one-way latency.
    pub latency: Duration,
    /// Extra delay drawn uniformly from zero to this, per copy: later datagrams can overtake
    /// earlier ones (reordering).
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice (the copy gets its own jitter).
    pub duplicate: f64,
}

impl DatagramPath {
    /// A path that only delays, by `latency`.
    pub fn clean(latency: Duration) -> DatagramPath {
        DatagramPath { latency, jitter: Duration::ZERO, loss: 0.0, duplicate: 0.0 }
    }

    /// When the copies of a datagram that leaves at `departed` arrive (none if it is lost, two
    /// if duplicated).
    pub fn arrivals<R: Rng>(&self, departed: Duration, rng: &mut R) -> Vec<Duration> {
        if rng.random_bool(self.loss.clamp(0.0, 1.0)) {
            return Vec::new();
        }
        let copies = if rng.random_bool(self.duplicate.clamp(0.0, 1.0)) { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let jitter = if self.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_micros(rng.random_range(0..=self.jitter.as_micros() as u64))
                };
                departed + self.latency + jitter
            })
            .collect()
    }
}

/// The largest IP packet a path carries, and what becomes of a larger one: a router drops it
/// and, on a path that [`reports`](PathMtu::reports) it, answers with an ICMP "Packet Too Big"
/// from which the sender's kernel learns the MTU and sends larger datagrams in fragments
/// from then on (Linux's default for UDP sockets). On a path that does not report (a black
/// hole), every larger datagram is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathMtu {
    /// The largest IP packet carried whole, in bytes.
    mtu: usize,
    /// Whether a too-big datagram is reported to its sender.
    reports: bool,
    /// The sender's kernel knows the MTU and fragments larger datagrams.
    learned: bool,
}

impl PathMtu {
    /// A path of `mtu` bytes that reports too-big datagrams (`reports`) or swallows them.
    pub fn new(mtu: usize, reports: bool) -> PathMtu {
        PathMtu { mtu, reports, learned: false }
    }

    /// The MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The path's MTU changes (a new route): the sender's kernel has not learned it yet.
    pub fn set_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
        self.learned = false;
    }

    /// Whether an IP packet of `len` bytes gets through (whole or in fragments).
    pub fn carries(&mut self, len: usize) -> bool {
        if len <= self.mtu || self.learned {
            return true;
        }
        self.learned = self.reports;
        false
    }
}

/// A link of limited rate with a drop-tail queue, shared by every flow that crosses it: a
/// datagram waits behind those queued before it, and one that would overflow the queue is
/// dropped. The queue's delay is what LEDBAT measures.
#[derive(Clone, Debug)]
pub struct Bottleneck {
    /// Bytes per second.
    rate: u64,
    /// Most bytes in the link (waiting or being sent).
    queue_limit: u64,
    /// When the last datagram accepted has left.
    free: Duration,
}

impl Bottleneck {
    /// A link of `rate` bytes per second whose queue holds `queue_limit` bytes.
    pub fn new(rate: u64, queue_limit: u64) -> Bottleneck {
        assert!(rate > 0, "a bottleneck needs a rate");
        Bottleneck { rate, queue_limit, free: Duration::ZERO }
    }

    /// Offers a datagram of `len` bytes at `now`: when it has left the link, or `None` if the
    /// queue is full and it is dropped.
    pub fn enqueue(&mut self, now: Duration, len: u64) -> Option<Duration> {
        if self.queued_bytes(now) + len > self.queue_limit {
            return None;
        }
        let start = self.free.max(now);
        self.free = start + serialisation(len, self.rate);
        Some(self.free)
    }

    /// How long a datagram offered now would wait before it starts to leave.
    pub fn queue_delay(&self, now: Duration) -> Duration {
        self.free.saturating_sub(now)
    }

    /// Bytes waiting at `now`.
    pub fn queued_bytes(&self, now: Duration) -> u64 {
        (self.queue_delay(now).as_micros() * u128::from(self.rate) / 1_000_000) as u64
    }
}

/// Items due at points of virtual time, taken in time order (first in, first out among equal
/// times): the event queue of a datagram world.
#[derive(Debug)]
pub struct Timeline<T> {
    items: BTreeMap<(Duration, u64), T>,
    next: u64,
}

impl<T> Default for Timeline<T> {
    fn default() -> Self {
        Timeline { items: BTreeMap::new(), next: 0 }
    }
}

impl<T> Timeline<T> {
    /// Schedules `item` at `at`.
    pub fn push(&mut self, at: Duration, item: T) {
        self.items.insert((at, self.next), item);
        self.next += 1;
    }

    /// When the earliest item is due.
    pub fn next_at(&self) -> Option<Duration> {
        self.items.keys().next().map(|&(at, _)| at)
    }

    /// Takes the earliest item if it is due by `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<(Duration, T)> {
        if self.next_at()? > now {
            return None;
        }
        self.items.pop_first().map(|((at, _), item)| (at, item))
    }

    /// How many items wait.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::{Bottleneck, DatagramPath, PathMtu, Timeline};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_path_loses_duplicates_and_reorders_at_its_rates() {
        let path = DatagramPath { latency: 50 * MS, jitter: 20 * MS, loss: 0.1, duplicate: 0.05 };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut lost, mut dup, mut reordered, mut last) = (0, 0, 0, Duration::ZERO);
        for i in 0..10_000u64 {
            let sent = Duration::from_micros(i * 1000);
            let arrivals = path.arrivals(sent, &mut rng);
            lost += usize::from(arrivals.is_empty());
            dup += usize::from(arrivals.len() == 2);
            for &a in &arrivals {
                assert!(a >= sent + 50 * MS && a <= sent + 70 * MS);
                reordered += usize::from(a < last);
                last = last.max(a);
            }
        }
        assert!((800..1200).contains(&lost), "{lost}");
        assert!((350..600).contains(&dup), "{dup}");
        assert!(reordered > 1000, "{reordered}");
        let again = path.arrivals(Duration::ZERO, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(again, path.arrivals(Duration::ZERO, &mut ChaCha8Rng::seed_from_u64(1)), "replayable");
    }

    #[test]
    fn a_bottleneck_queues_at_its_rate_and_drops_when_full() {
        let mut b = Bottleneck::new(1_000_000, 3000);
        assert_eq!(b.enqueue(Duration::ZERO, 1000), Some(MS));
        assert_eq!(b.enqueue(Duration::ZERO, 1000), Some(2 * MS));
        assert_eq!(b.enqueue(Duration::ZERO, 1000), Some(3 * MS));
        assert_eq!(b.queue_delay(Duration::ZERO), 3 * MS);
        assert_eq!(b.enqueue(Duration::ZERO, 1000), None, "full: dropped");
        assert_eq!(b.queued_bytes(2 * MS), 1000);
        assert_eq!(b.enqueue(2 * MS, 1000), Some(4 * MS));
    }

    #[test]
    fn a_too_big_datagram_is_lost_and_then_fragmented_where_reported() {
        let mut reported = PathMtu::new(1400, true);
        assert!(reported.carries(1400));
        assert!(!reported.carries(1401), "the first too-big one is dropped");
        assert!(reported.carries(9000), "later ones leave in fragments");
        reported.set_mtu(1280);
        assert!(!reported.carries(1400), "a new MTU is learned again");
        let mut hole = PathMtu::new(1400, false);
        assert!(!hole.carries(1401) && !hole.carries(1401), "a black hole never tells");
        assert_eq!(hole.mtu(), 1400);
    }

    #[test]
    fn a_timeline_is_time_ordered_and_fifo_at_equal_times() {
        let mut t = Timeline::default();
        t.push(5 * MS, "late");
        t.push(MS, "first");
        t.push(MS, "second");
        assert_eq!(t.next_at(), Some(MS));
        assert_eq!(t.pop_due(Duration::ZERO), None);
        assert_eq!(t.pop_due(MS), Some((MS, "first")));
        assert_eq!(t.pop_due(MS), Some((MS, "second")));
        assert_eq!(t.pop_due(10 * MS), Some((5 * MS, "late")));
        assert!(t.is_empty());
    }
}
