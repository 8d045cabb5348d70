//! One direction of a stream connection.

use std::collections::VecDeque;
use std::time::Duration;

use crate::uplink::{serialisation, Uplink};

/// What a direction's bytes pass through besides the sender's uplink.
#[derive(Clone, Copy, Debug)]
pub struct Path {
    /// One-way latency, sender to receiver.
    pub latency: Duration,
    /// The receiver's download rate for this direction, in bytes per second (`None`: unlimited).
    pub down: Option<u64>,
    /// The sender's kernel send buffer in bytes (`None`: unlimited). A send waits while the
    /// buffer holds bytes and it would overflow; a send larger than the buffer goes alone.
    pub sndbuf: Option<u64>,
}

/// A payload put on the wire.
#[derive(Debug, PartialEq)]
pub struct Transmit<T> {
    /// What was sent.
    pub item: T,
    /// Its length in bytes.
    pub len: u64,
    /// When its last byte left the sender's uplink (and the kernel buffer forgot it).
    pub done: Duration,
    /// When it has fully arrived at the receiver.
    pub arrival: Duration,
}

/// One direction of a TCP-like connection (ordered and reliable) carrying payloads of type `T`.
///
/// The sender hands payloads to [`Link::send`]; [`Link::poll_transmit`] moves them, while the
/// sender's kernel buffer has room, onto the sender's [`Uplink`] and says when each arrives.
/// Arrivals keep their order and are spaced by the receiver's downlink. When the buffer is full,
/// [`Link::poll_timeout`] says when its oldest bytes leave; call [`Link::handle_timeout`] and
/// poll again then. The buffer frees room only in `handle_timeout`: bytes that leave the
/// uplink at the instant they were queued still count until the world next moves time on.
#[derive(Debug)]
pub struct Link<T> {
    /// Payloads waiting for room in the kernel buffer, with their lengths.
    backlog: VecDeque<(T, u64)>,
    /// Bytes in the kernel buffer, counting those whose `done` has passed but that were not
    /// retired yet.
    queued: u64,
    /// When each chunk in the kernel buffer leaves the uplink, and its size, in order.
    in_kernel: VecDeque<(Duration, u64)>,
    /// Arrival of the last payload sent (later ones never arrive before it).
    last_arrival: Duration,
    /// Deliveries held back by a cut path resume no earlier than this.
    stall_until: Duration,
}

impl<T> Default for Link<T> {
    fn default() -> Self {
        Link {
            backlog: VecDeque::new(),
            queued: 0,
            in_kernel: VecDeque::new(),
            last_arrival: Duration::ZERO,
            stall_until: Duration::ZERO,
        }
    }
}

impl<T> Link<T> {
    /// Queues a payload of `len` bytes behind those sent before.
    pub fn send(&mut self, item: T, len: u64) {
        self.backlog.push_back((item, len));
    }

    /// Forgets the chunks that have left the uplink by `now`, which frees their room in the
    /// kernel buffer.
    pub fn handle_timeout(&mut self, now: Duration) {
        while let Some(&(done, n)) = self.in_kernel.front() {
            if done > now {
                break;
            }
            self.queued -= n;
            self.in_kernel.pop_front();
        }
    }

    /// Puts the next waiting payload on the wire if the kernel buffer has room for it.
    pub fn poll_transmit(&mut self, now: Duration, uplink: &mut Uplink, path: &Path) -> Option<Transmit<T>> {
        let &(_, len) = self.backlog.front()?;
        if self.queued > 0 && path.sndbuf.is_some_and(|cap| self.queued + len > cap) {
            return None;
        }
        let (item, len) = self.backlog.pop_front().expect("front exists");
        let done = uplink.transmit(now, len);
        self.queued += len;
        self.in_kernel.push_back((done, len));
        let spacing = path.down.map_or(Duration::ZERO, |rate| serialisation(len, rate));
        let arrival = (done + path.latency).max(self.last_arrival + spacing);
        self.last_arrival = arrival;
        Some(Transmit { item, len, done, arrival })
    }

    /// After [`Link::poll_transmit`] returned `None`: when the full kernel buffer next frees
    /// room (its oldest bytes leave), if payloads wait for it.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.backlog.is_empty() {
            return None;
        }
        self.in_kernel.front().map(|&(done, _)| done)
    }

    /// Drops the payloads that have not reached the kernel buffer (the sender closed).
    pub fn discard_unsent(&mut self) {
        self.backlog.clear();
    }

    /// When the last payload sent arrives.
    pub fn last_arrival(&self) -> Duration {
        self.last_arrival
    }

    /// Whether a payload due now must wait, and until when: `blocked` is when the path clears if
    /// it is cut now (the stream stalls and TCP retransmits). Bytes keep their order: once one
    /// payload is held, later ones wait at least as long, even if a later cut is shorter.
    pub fn hold(&mut self, now: Duration, blocked: Option<Duration>) -> Option<Duration> {
        let resume = match blocked {
            Some(at) => at,
            None if self.stall_until > now => self.stall_until,
            None => return None,
        };
        let at = resume.max(self.stall_until);
        self.stall_until = at;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Link, Path, Transmit};
    use crate::uplink::Uplink;

    const MS: Duration = Duration::from_millis(1);

    fn path(sndbuf: Option<u64>) -> Path {
        Path { latency: 10 * MS, down: None, sndbuf }
    }

    #[test]
    fn a_send_arrives_after_serialisation_and_latency() {
        let mut up = Uplink::new(Some(1_000_000));
        let mut link = Link::default();
        link.send("a", 1000);
        let t = link.poll_transmit(Duration::ZERO, &mut up, &path(None));
        assert_eq!(t, Some(Transmit { item: "a", len: 1000, done: MS, arrival: 11 * MS }));
        assert_eq!(link.poll_transmit(Duration::ZERO, &mut up, &path(None)), None);
        assert_eq!(link.poll_timeout(), None, "nothing waits");
    }

    #[test]
    fn a_full_kernel_buffer_holds_sends_until_its_oldest_bytes_leave() {
        let mut up = Uplink::new(Some(1_000_000));
        let mut link = Link::default();
        let small = path(Some(1500));
        link.send(1, 1000);
        link.send(2, 1000);
        assert_eq!(link.poll_transmit(Duration::ZERO, &mut up, &small).map(|t| t.item), Some(1));
        assert_eq!(link.poll_transmit(Duration::ZERO, &mut up, &small), None, "1000 + 1000 > 1500");
        assert_eq!(link.poll_timeout(), Some(MS));
        assert_eq!(link.poll_transmit(MS, &mut up, &small), None, "room only once the link learns the time");
        link.handle_timeout(MS);
        let t = link.poll_transmit(MS, &mut up, &small).expect("room at 1 ms");
        assert_eq!((t.item, t.done, t.arrival), (2, 2 * MS, 12 * MS));
    }

    #[test]
    fn a_send_larger_than_the_buffer_goes_alone() {
        let mut up = Uplink::new(None);
        let mut link = Link::default();
        link.send((), 10_000);
        assert!(link.poll_transmit(Duration::ZERO, &mut up, &path(Some(1500))).is_some());
    }

    #[test]
    fn the_receivers_downlink_spaces_arrivals_and_order_is_kept() {
        let mut up = Uplink::new(None);
        let mut link = Link::default();
        let slow_down = Path { latency: 10 * MS, down: Some(1_000_000), sndbuf: None };
        for i in 0..3 {
            link.send(i, 1000);
        }
        let arrivals: Vec<_> =
            std::iter::from_fn(|| link.poll_transmit(Duration::ZERO, &mut up, &slow_down)).map(|t| t.arrival).collect();
        assert_eq!(arrivals, [10 * MS, 11 * MS, 12 * MS]);
        assert_eq!(link.last_arrival(), 12 * MS);
    }

    #[test]
    fn a_close_drops_what_has_not_reached_the_kernel() {
        let mut up = Uplink::new(Some(1000));
        let mut link = Link::default();
        link.send(1, 800);
        link.send(2, 800);
        assert!(link.poll_transmit(Duration::ZERO, &mut up, &path(Some(1000))).is_some());
        link.discard_unsent();
        assert_eq!(link.poll_timeout(), None);
        link.handle_timeout(Duration::from_secs(5));
        assert_eq!(link.poll_transmit(Duration::from_secs(5), &mut up, &path(Some(1000))), None);
    }

    #[test]
    fn held_deliveries_keep_their_order_across_a_shorter_second_cut() {
        let mut link: Link<()> = Link::default();
        assert_eq!(link.hold(MS, None), None, "an open path holds nothing");
        assert_eq!(link.hold(MS, Some(100 * MS)), Some(100 * MS));
        assert_eq!(link.hold(2 * MS, None), Some(100 * MS), "later bytes wait behind the held ones");
        assert_eq!(link.hold(3 * MS, Some(50 * MS)), Some(100 * MS), "a shorter cut does not let them overtake");
        assert_eq!(link.hold(100 * MS, None), None);
    }
}
