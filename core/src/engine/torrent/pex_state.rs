//! What one peer was told over BEP 11 peer exchange (`ut_pex`), and when it may be told or
//! heard from again: the state a [`super::peer::Peer`] keeps, apart from the torrent's side of
//! the exchange in `pex.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::types::Instant;
use crate::wire::PexMessage;

/// Time between two messages to one peer; the first goes this long after the connection.
const SEND_INTERVAL: Duration = Duration::from_secs(60);

/// Messages from one peer closer together than this are ignored: BEP 11 allows one a minute,
/// and libtorrent disconnects a peer that sends three within a minute.
const MIN_RECEIVE_GAP: Duration = Duration::from_secs(45);

/// Added (and, separately, dropped) peers per message we send (BEP 11's limit).
const MAX_SENT: usize = 50;

/// One peer's exchange with us.
pub(crate) struct PexState {
    /// When we send it our next message.
    next_send: Instant,
    /// The addresses it has from us: told as added, not yet told as dropped.
    told: BTreeSet<SocketAddr>,
    /// When the last message from it that we took arrived.
    last_taken: Option<Instant>,
}

impl PexState {
    /// The exchange with a peer whose connection is up at `now`.
    pub fn new(now: Instant) -> Self {
        PexState { next_send: now + SEND_INTERVAL, told: BTreeSet::new(), last_taken: None }
    }

    /// Whether our next message to it is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next_send
    }

    /// Whether a message from it arriving at `now` is taken (remembered if so): one closer
    /// than [`MIN_RECEIVE_GAP`] to the last one taken is ignored.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.last_taken.is_some_and(|at| now - at < MIN_RECEIVE_GAP) {
            return false;
        }
        self.last_taken = Some(now);
        true
    }

    /// Our message to it at `now`, given the peers we could tell it about (its own address
    /// excluded); the next one is due [`SEND_INTERVAL`] later.
    pub fn next_message(&mut self, now: Instant, current: &BTreeMap<SocketAddr, u8>) -> PexMessage {
        self.next_send = now + SEND_INTERVAL;
        self.changes(current)
    }

    /// What changed in `current` since it was last told, and remembers that it was told.
    fn changes(&mut self, current: &BTreeMap<SocketAddr, u8>) -> PexMessage {
        let added: Vec<(SocketAddr, u8)> = current
            .iter()
            .filter(|(addr, _)| !self.told.contains(addr))
            .take(MAX_SENT)
            .map(|(addr, flags)| (*addr, *flags))
            .collect();
        let dropped: Vec<SocketAddr> =
            self.told.iter().filter(|addr| !current.contains_key(addr)).take(MAX_SENT).copied().collect();
        self.told.extend(added.iter().map(|(addr, _)| *addr));
        for addr in &dropped {
            self.told.remove(addr);
        }
        // With more churn than a message carries, peers long gone are forgotten unsaid: this
        // keeps the set within the connected peers plus one message's worth.
        if self.told.len() > current.len() + MAX_SENT {
            self.told.retain(|addr| current.contains_key(addr));
        }
        PexMessage { added, dropped }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use super::PexState;
    use crate::types::Instant;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 6881))
    }

    fn set(ids: &[u8]) -> BTreeMap<SocketAddr, u8> {
        ids.iter().map(|i| (addr(*i), 0)).collect()
    }

    #[test]
    fn each_message_says_what_changed_since_the_last_one() {
        let mut s = PexState::new(Instant::ZERO);
        let m = s.changes(&set(&[1, 2]));
        assert_eq!(m.added, vec![(addr(1), 0), (addr(2), 0)]);
        assert!(m.dropped.is_empty());
        assert!(s.changes(&set(&[1, 2])).is_empty(), "nothing changed");
        let m = s.changes(&set(&[2, 3]));
        assert_eq!((m.added, m.dropped), (vec![(addr(3), 0)], vec![addr(1)]));
        // A peer that came and went between two messages is never mentioned.
        let m = s.changes(&set(&[2, 3]));
        assert!(m.is_empty());
    }

    #[test]
    fn at_most_fifty_each_way_and_the_rest_follows() {
        let mut s = PexState::new(Instant::ZERO);
        let many: Vec<u8> = (1..=120).collect();
        let sizes: Vec<usize> = (0..3).map(|_| s.changes(&set(&many)).added.len()).collect();
        assert_eq!(sizes, [50, 50, 20]);
        let m = s.changes(&set(&[]));
        assert_eq!((m.added.len(), m.dropped.len()), (0, 50));
        // Past one message's worth of stale entries the rest are forgotten, not sent forever.
        assert!(s.changes(&set(&[])).is_empty());
        assert!(s.told.is_empty());
    }

    #[test]
    fn messages_go_a_minute_apart_and_are_taken_at_most_every_45_seconds() {
        let secs = |n| Instant::ZERO + std::time::Duration::from_secs(n);
        let mut s = PexState::new(Instant::ZERO);
        assert!(!s.is_due(secs(59)) && s.is_due(secs(60)), "the first a minute after the connection");
        s.next_message(secs(61), &set(&[1]));
        assert!(!s.is_due(secs(120)) && s.is_due(secs(121)));
        assert!(s.take(secs(10)));
        assert!(!s.take(secs(54)), "44 s after the last one taken");
        assert!(s.take(secs(55)), "45 s after it");
    }
}
