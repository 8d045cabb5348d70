//! How many blocks we keep requested from one peer: sized from its measured rate and round
//! trip once they are known, as libtorrent sizes `desired_queue_size` (rate × queue time ÷
//! block size, bounded, from a rate averaged over seconds), and grown block by block before.
//!
//! Too short a queue leaves a fast peer idle between our requests; too long a one pins blocks
//! at a slow peer for many seconds (issue #17: a slow lossy seeder held about 150 blocks, 20 s
//! of its rate, and pieces waited on it while others could have sent them).

use std::collections::VecDeque;
use std::time::Duration;

use crate::engine::config::Config;
use crate::types::{Instant, BLOCK_SIZE};

/// Ticks (about a second each) the rate is averaged over. On a lossy path blocks arrive in
/// bursts (a lost segment holds back everything behind it until it is resent): a one-second
/// figure swings from nothing to several times the real rate, and a queue sized from a high
/// swing holds many seconds of the real one.
const RATE_WINDOW: usize = 5;

/// The request queue's size for one peer, and what it is sized from.
#[derive(Clone, Debug)]
pub(crate) struct RequestQueue {
    /// How many requests we keep in flight to it.
    target: usize,
    /// The queue grows by a block per block received until its rate is measured (TCP-style
    /// slow start): a fast peer held to the starting queue for the first second spends most
    /// of a 1 GiB download waiting for requests.
    slow_start: bool,
    /// The shortest time from a request to its block seen so far: the path's round trip plus
    /// the peer's time to send one block, without our own queue in it (a block that waited
    /// behind others shows a longer time, so the lowest is the one to trust).
    rtt: Option<Duration>,
    /// Block bytes received since the last tick.
    pending: u64,
    /// The last ticks' block bytes, with when each tick was, oldest first, while it has had
    /// our requests.
    window: VecDeque<(Instant, u64)>,
    /// When the time `window` covers began: our first request after it was idle, or the tick
    /// before its oldest entry.
    start: Instant,
}

impl RequestQueue {
    /// A new peer's queue: [`Config::initial_requests_per_peer`], growing until its rate is known.
    pub(crate) fn new(cfg: &Config, now: Instant) -> Self {
        RequestQueue {
            target: cfg.initial_requests_per_peer.max(1),
            slow_start: true,
            rtt: None,
            pending: 0,
            window: VecDeque::with_capacity(RATE_WINDOW + 1),
            start: now,
        }
    }

    /// How many requests to keep in flight.
    pub(crate) fn target(&self) -> usize {
        self.target
    }

    /// Requests went out `now` to a peer that had none of ours: if it was idle, the rate's
    /// time starts now (time it spent choking us is not time it was slow).
    pub(crate) fn asked(&mut self, now: Instant) {
        if self.window.is_empty() && self.pending == 0 {
            self.start = now;
        }
    }

    /// A block of `len` bytes we asked for at `asked` arrived `now`; `max` is the most
    /// requests the peer accepts.
    pub(crate) fn on_block(&mut self, asked: Instant, now: Instant, len: u32, max: usize) {
        let sample = now - asked;
        self.rtt = Some(self.rtt.map_or(sample, |r| r.min(sample)));
        self.pending += u64::from(len);
        if self.slow_start {
            self.target = (self.target + 1).min(max.max(1));
        }
    }

    /// Its block rate over the window, in bytes per second (0 while nothing came).
    fn rate(&self, now: Instant) -> u64 {
        let bytes: u64 = self.window.iter().map(|(_, b)| b).sum();
        let span = (now - self.start).max(Duration::from_millis(100));
        (bytes as f64 / span.as_secs_f64()) as u64
    }

    /// Once a second (`now`), with `outstanding` requests to the peer: sizes the queue from
    /// its rate. Returns how many of them to give back: a queue far longer than its new size
    /// would keep blocks waiting at this peer for seconds (those asked for during slow start,
    /// or while its rate looked higher).
    pub(crate) fn on_tick(&mut self, now: Instant, outstanding: usize, cfg: &Config) -> usize {
        if outstanding == 0 && self.pending == 0 {
            // Idle (choked, or nothing to ask of it): the next requests start a new window.
            self.window.clear();
            self.start = now;
            return 0;
        }
        self.window.push_back((now, std::mem::take(&mut self.pending)));
        if self.window.len() > RATE_WINDOW {
            if let Some((end, _)) = self.window.pop_front() {
                self.start = end;
            }
        }
        let rate = self.rate(now);
        if rate == 0 {
            // Nothing came yet in this window (a round trip after being idle, or a stall that
            // the request timeout deals with): no figure to size from.
            return 0;
        }
        self.slow_start = false;
        // The round trip counts up to the queue time: a longer one is most likely other
        // traffic queued at the peer, which a longer queue of ours would only add to.
        let rtt = self.rtt.unwrap_or_default().min(cfg.request_queue_time);
        let secs = (cfg.request_queue_time + rtt).as_secs_f64();
        let blocks = (rate as f64 * secs / f64::from(BLOCK_SIZE)).ceil() as usize;
        let min = cfg.min_requests_per_peer.max(1);
        self.target = blocks.clamp(min, cfg.max_requests_per_peer.max(min));
        // Some slack, so that a rate that wobbles does not cancel and re-ask blocks each second.
        let keep = self.target + self.target / 2 + 1;
        if outstanding > keep {
            outstanding - self.target
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RequestQueue;
    use crate::engine::config::Config;
    use crate::types::{Instant, BLOCK_SIZE};

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    const B: u32 = BLOCK_SIZE;

    #[test]
    fn slow_start_grows_a_block_per_block_until_the_rate_is_known() {
        let cfg = Config::default();
        let mut q = RequestQueue::new(&cfg, at(0));
        let start = q.target();
        assert_eq!(start, cfg.initial_requests_per_peer);
        assert_eq!(q.on_tick(at(1000), start, &cfg), 0, "nothing came yet: nothing changes");
        for i in 0..10 {
            q.on_block(at(1000), at(1100 + i), B, 250);
        }
        assert_eq!(q.target(), start + 10);
        assert_eq!(q.rtt, Some(Duration::from_millis(100)), "the lowest sample");
    }

    #[test]
    fn the_queue_holds_the_queue_time_plus_a_round_trip_of_the_rate() {
        let cfg = Config::default();
        let mut q = RequestQueue::new(&cfg, at(0));
        q.asked(at(0));
        // 20 blocks a second, each half a second after it was asked for.
        for i in 0..20 {
            q.on_block(at(i * 50), at(500 + i * 50), B, 250);
        }
        q.on_tick(at(1000), 10, &cfg);
        let secs = cfg.request_queue_time.as_secs_f64() + 0.5;
        assert_eq!(q.target(), (20.0 * secs).ceil() as usize);
        for i in 0..20 {
            q.on_block(at(1000 + i * 50), at(1100 + i * 50), B, 250);
        }
        q.on_tick(at(2000), 10, &cfg);
        assert_eq!(q.target(), (20.0 * (secs - 0.4)).ceil() as usize, "a shorter round trip shortens it");
    }

    #[test]
    fn the_queue_is_bounded() {
        let cfg = Config::default();
        let mut q = RequestQueue::new(&cfg, at(0));
        for _ in 0..10_000 {
            q.on_block(at(0), at(10), B, 10_000);
        }
        q.on_tick(at(1000), 0, &cfg);
        assert_eq!(q.target(), cfg.max_requests_per_peer, "bounded above");
        let mut q = RequestQueue::new(&cfg, at(0));
        q.on_block(at(0), at(10), 1, 250);
        q.on_tick(at(1000), 1, &cfg);
        assert_eq!(q.target(), cfg.min_requests_per_peer, "bounded below");
    }

    #[test]
    fn a_burst_after_a_stall_counts_over_the_stall() {
        // A lossy path: nothing for four seconds, then eight blocks at once (32 kB/s).
        let cfg = Config::default();
        let mut q = RequestQueue::new(&cfg, at(0));
        q.asked(at(0));
        for s in 1..4 {
            assert_eq!(q.on_tick(at(s * 1000), 40, &cfg), 0);
        }
        for _ in 0..8 {
            q.on_block(at(0), at(3900), B, 250);
        }
        let back = q.on_tick(at(4000), 40, &cfg);
        // 8 blocks in 4 s is 2 a second: the queue holds about 4 s of them.
        assert!(q.target() <= 8, "{}", q.target());
        assert_eq!(back, 40 - q.target(), "the 32 asked for during slow start are given back but the target");
        assert_eq!(q.on_tick(at(5000), q.target() + 1, &cfg), 0, "a little over is left alone");
    }

    #[test]
    fn a_window_with_nothing_in_it_yet_keeps_the_size() {
        let cfg = Config::default();
        let mut q = RequestQueue::new(&cfg, at(0));
        q.on_block(at(0), at(100), B, 250);
        q.on_tick(at(1000), 10, &cfg);
        let target = q.target();
        q.on_tick(at(2000), 0, &cfg); // idle
        q.asked(at(2990));
        assert_eq!(q.on_tick(at(3000), target, &cfg), 0, "its requests are on their way");
        assert_eq!(q.target(), target);
    }

    #[test]
    fn time_spent_idle_is_not_counted() {
        let cfg = Config::default();
        let mut q = RequestQueue::new(&cfg, at(0));
        for s in 1..10 {
            q.on_tick(at(s * 1000), 0, &cfg); // choked: nothing asked
        }
        q.asked(at(9500));
        for i in 0..10 {
            q.on_block(at(9500), at(9550 + i * 50), B, 250);
        }
        q.on_tick(at(10_000), 5, &cfg);
        // 10 blocks in half a second: 20 a second.
        let secs = cfg.request_queue_time.as_secs_f64() + 0.05;
        assert_eq!(q.target(), (20.0 * secs).ceil() as usize);
    }
}
