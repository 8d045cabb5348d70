//! Congestion control and timers of one connection: the round-trip estimate and retransmission
//! timeout (BEP 29, as TCP's RFC 6298), and LEDBAT's delay-based window (RFC 6817).

use std::time::Duration;

use crate::types::Instant;

/// The timeout before the first RTT sample (BEP 29).
pub(super) const INITIAL_RTO: Duration = Duration::from_secs(1);
/// The smallest timeout (BEP 29).
const MIN_RTO: Duration = Duration::from_millis(500);
/// The largest timeout once backed off: RFC 6298 allows an upper bound of at least 60 s.
const MAX_RTO: Duration = Duration::from_secs(60);
/// The window may grow by at most this many bytes per round trip (libutp's and libtorrent's
/// `MAX_CWND_INCREASE_BYTES_PER_RTT`).
const MAX_GAIN_PER_RTT: f64 = 3000.0;
/// Base delay is the smallest delay seen over two minutes (RFC 6817: `BASE_HISTORY` of 10
/// one-minute buckets; BEP 29 uses the last two minutes), kept as two one-minute buckets.
const BASE_BUCKET: Duration = Duration::from_secs(60);

/// The round-trip estimate and the retransmission timeout.
#[derive(Clone, Debug)]
pub(super) struct Rtt {
    /// Smoothed round-trip time in microseconds (`None` before the first sample).
    srtt: Option<u64>,
    /// Round-trip variation in microseconds.
    rttvar: u64,
    /// The current timeout, backed off on each expiry.
    rto: Duration,
}

impl Rtt {
    pub(super) fn new() -> Rtt {
        Rtt { srtt: None, rttvar: 0, rto: INITIAL_RTO }
    }

    /// Folds in a sample from a packet sent once (Karn's rule is the caller's).
    pub(super) fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_micros().min(u128::from(u32::MAX)) as u64;
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                self.rttvar = (3 * self.rttvar + s.abs_diff(r)) / 4;
                self.srtt = Some((7 * s + r) / 8);
            }
        }
        let rto = Duration::from_micros(self.srtt.unwrap_or(0) + 4 * self.rttvar);
        self.rto = rto.clamp(MIN_RTO, MAX_RTO);
    }

    /// Doubles the timeout after it expired.
    pub(super) fn back_off(&mut self) {
        self.rto = (self.rto * 2).min(MAX_RTO);
    }

    /// The retransmission timeout.
    pub(super) fn rto(&self) -> Duration {
        self.rto
    }

    /// The smoothed round-trip time, if measured.
    pub(super) fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_micros)
    }
}

/// LEDBAT: the congestion window grows while the one-way queueing delay of our packets is
/// below the target and shrinks above it, so uTP yields to loss-based flows sharing a queue.
#[derive(Clone, Debug)]
pub(super) struct Ledbat {
    /// The congestion window in bytes.
    cwnd: f64,
    /// The smallest window: one full packet.
    min_cwnd: f64,
    /// The largest window (the send buffer).
    max_cwnd: f64,
    /// The queueing delay LEDBAT aims for, in microseconds.
    target: f64,
    /// Smallest delay of the current and of the previous minute (wrapping clock differences).
    base: [Option<u32>; 2],
    /// When the current bucket started.
    bucket_start: Option<Instant>,
    /// Our packets' last queueing delay above the base, in microseconds.
    queue_delay: u32,
    /// Packets sent before this sequence number do not halve the window again (one cut per
    /// loss event, as TCP's recovery).
    recovery_until: Option<u16>,
    /// Below this window (and while the delay is under the target) the window grows by what
    /// is acknowledged, doubling per round trip (slow start, as libtorrent's uTP): set to half
    /// the window at a loss, so a timeout recovers in a few round trips, not a linear climb.
    ssthresh: f64,
}

impl Ledbat {
    pub(super) fn new(packet: usize, max: usize, target: Duration) -> Ledbat {
        let min_cwnd = packet as f64;
        Ledbat {
            // libutp and libtorrent start at a few packets; two lets the first round trip
            // carry a request and its answer.
            cwnd: 2.0 * min_cwnd,
            min_cwnd,
            max_cwnd: (max as f64).max(min_cwnd),
            target: target.as_micros() as f64,
            base: [None, None],
            bucket_start: None,
            queue_delay: 0,
            recovery_until: None,
            ssthresh: f64::MAX,
        }
    }

    /// The window in bytes.
    pub(super) fn window(&self) -> usize {
        self.cwnd as usize
    }

    /// The last measured queueing delay.
    pub(super) fn queue_delay(&self) -> Duration {
        Duration::from_micros(u64::from(self.queue_delay))
    }

    /// Folds in a one-way delay sample (the peer's `timestamp_diff`) taken at `now`.
    pub(super) fn delay_sample(&mut self, sample: u32, now: Instant) {
        let start = *self.bucket_start.get_or_insert(now);
        if now - start >= BASE_BUCKET {
            self.base = [None, self.base[0]];
            self.bucket_start = Some(now);
        }
        // Clocks of the two hosts are unrelated: only differences of samples mean anything,
        // so the minimum is taken with wrapping comparisons.
        let lower = |a: u32, b: u32| if (a.wrapping_sub(b) as i32) < 0 { a } else { b };
        self.base[0] = Some(self.base[0].map_or(sample, |b| lower(b, sample)));
        let base = match self.base {
            [Some(a), Some(b)] => lower(a, b),
            [a, b] => a.or(b).unwrap_or(sample),
        };
        self.queue_delay = sample.wrapping_sub(base).min(i32::MAX as u32);
    }

    /// Grows or shrinks the window after `acked` bytes were acknowledged; `in_flight` is what
    /// was outstanding before the acknowledgement (the window only grows when it was used).
    pub(super) fn on_ack(&mut self, acked: usize, in_flight: usize) {
        if acked == 0 {
            return;
        }
        let off_target = (self.target - f64::from(self.queue_delay)) / self.target;
        if off_target > 0.0 && (in_flight as f64) + self.min_cwnd < self.cwnd {
            return;
        }
        let acked = acked as f64;
        if off_target > 0.0 && self.cwnd < self.ssthresh {
            self.cwnd = (self.cwnd + acked).min(self.ssthresh).min(self.max_cwnd);
            return;
        }
        if off_target <= 0.0 {
            // Queueing past the target ends slow start for good.
            self.ssthresh = self.ssthresh.min(self.cwnd);
        }
        let window_factor = acked.min(self.cwnd) / acked.max(self.cwnd);
        self.cwnd += MAX_GAIN_PER_RTT * off_target.max(-1.0) * window_factor;
        self.cwnd = self.cwnd.clamp(self.min_cwnd, self.max_cwnd);
    }

    /// Halves the window after a loss of packet `lost` (once per loss event); `next_seq` is the
    /// next sequence number to be sent.
    pub(super) fn on_loss(&mut self, lost: u16, next_seq: u16) {
        if self.recovery_until.is_some_and(|end| super::seq::before(lost, end)) {
            return;
        }
        self.recovery_until = Some(next_seq);
        self.cwnd = (self.cwnd / 2.0).max(self.min_cwnd);
        self.ssthresh = self.cwnd;
    }

    /// Shrinks the window to one packet after a retransmission timeout.
    pub(super) fn on_timeout(&mut self) {
        self.ssthresh = (self.cwnd / 2.0).max(self.min_cwnd);
        self.cwnd = self.min_cwnd;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Ledbat, Rtt, MIN_RTO};
    use crate::Instant;

    #[test]
    fn rto_follows_samples_and_backs_off() {
        let mut rtt = Rtt::new();
        rtt.sample(Duration::from_millis(200));
        assert_eq!(rtt.srtt(), Some(Duration::from_millis(200)));
        assert_eq!(rtt.rto(), Duration::from_millis(600));
        for _ in 0..50 {
            rtt.sample(Duration::from_millis(10));
        }
        assert_eq!(rtt.rto(), MIN_RTO);
        rtt.back_off();
        assert_eq!(rtt.rto(), 2 * MIN_RTO);
    }

    #[test]
    fn the_window_grows_below_the_target_and_shrinks_above() {
        let mut cc = Ledbat::new(1000, 1 << 20, Duration::from_millis(100));
        let t = Instant::from_micros(1);
        cc.delay_sample(5_000, t);
        let start = cc.window();
        cc.on_ack(1000, start);
        assert!(cc.window() > start);
        cc.delay_sample(5_000 + 300_000, t); // 300 ms of queueing
        assert_eq!(cc.queue_delay(), Duration::from_millis(300));
        let high = cc.window();
        cc.on_ack(1000, high);
        assert!(cc.window() < high);
        cc.on_loss(10, 20);
        let halved = cc.window();
        cc.on_loss(15, 25);
        assert_eq!(cc.window(), halved, "one cut per loss event");
        cc.on_timeout();
        assert_eq!(cc.window(), 1000);
    }
}
