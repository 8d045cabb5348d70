//! Packet-size discovery of one connection (packetization-layer path MTU discovery, RFC 8899,
//! shaped like quinn-proto's): data starts at a payload every path carries, probes try larger
//! sizes by binary search up to a ceiling the host knows, a lost probe means "too big", and
//! repeated losses of full-size packets fall back to the start (a black hole).
//!
//! A probe is an ordinary data packet padded up to the size tried: its data is never larger
//! than the size in use, so when the probe is lost the data goes again in a packet that fits.

use std::time::Duration;

use crate::types::Instant;

/// Probes lost at one size before it counts as too big: a single loss may be congestion.
const PROBE_TRIES: u32 = 2;
/// The search stops once the bounds are this close (bytes of payload).
const MIN_STEP: usize = 16;
/// A finished search starts again after this long: the path may have changed (quinn-proto and
/// RFC 8899's `PMTU_RAISE_TIMER`: 600 s).
const RESEARCH: Duration = Duration::from_secs(600);
/// Losses of packets larger than the floor, with none of them acknowledged in between, that
/// reveal a black hole.
const BLACK_HOLE_LOSSES: u32 = 3;

/// Where the search of one connection stands.
#[derive(Clone, Debug)]
pub(super) struct PathMtu {
    /// The payload every path carries: where it starts and falls back to.
    floor: usize,
    /// The largest payload it may try.
    ceiling: usize,
    /// The payload new packets carry: the largest confirmed.
    current: usize,
    /// The smallest size found too big (or one past the ceiling).
    too_big: usize,
    /// The probe in flight: its sequence number and the payload size it tries.
    probe: Option<(u16, usize)>,
    /// Probes lost in a row at the size being tried.
    lost_probes: u32,
    /// When a finished search starts again.
    research_at: Option<Instant>,
    /// Losses of packets larger than the floor since one of them was acknowledged.
    large_losses: u32,
}

impl PathMtu {
    /// A search from `floor` up to `ceiling` (no search when the ceiling is not above it).
    pub(super) fn new(floor: usize, ceiling: usize) -> PathMtu {
        let ceiling = ceiling.max(floor);
        PathMtu {
            floor,
            ceiling,
            current: floor,
            too_big: ceiling + 1,
            probe: None,
            lost_probes: 0,
            research_at: None,
            large_losses: 0,
        }
    }

    /// The payload size of new packets.
    pub(super) fn current(&self) -> usize {
        self.current
    }

    /// The payload size to probe now, if a probe is due.
    pub(super) fn probe_due(&mut self, now: Instant) -> Option<usize> {
        if self.probe.is_some() {
            return None;
        }
        if self.research_at.is_some_and(|t| now >= t) {
            self.research_at = None;
            self.too_big = self.ceiling + 1;
        }
        if self.research_at.is_some() {
            return None;
        }
        let gap = self.too_big - self.current;
        if gap > MIN_STEP {
            return Some(self.current + gap / 2);
        }
        // Close below the ceiling: the ceiling itself, which no probe found too big.
        if self.too_big == self.ceiling + 1 && self.current < self.ceiling {
            return Some(self.ceiling);
        }
        self.research_at = Some(now + RESEARCH);
        None
    }

    /// A probe of `size` went out as packet `seq`.
    pub(super) fn probe_sent(&mut self, seq: u16, size: usize) {
        self.probe = Some((seq, size));
    }

    /// The probe in flight, if any: its sequence number.
    pub(super) fn probe_seq(&self) -> Option<u16> {
        self.probe.map(|(seq, _)| seq)
    }

    /// The probe arrived: its size fits the path.
    pub(super) fn probe_acked(&mut self) {
        if let Some((_, size)) = self.probe.take() {
            self.current = self.current.max(size);
            self.lost_probes = 0;
            self.large_losses = 0;
        }
    }

    /// The probe was lost: after [`PROBE_TRIES`] of them its size is too big.
    pub(super) fn probe_lost(&mut self) {
        if let Some((_, size)) = self.probe.take() {
            self.lost_probes += 1;
            if self.lost_probes >= PROBE_TRIES {
                self.too_big = size;
                self.lost_probes = 0;
            }
        }
    }

    /// A packet of `size` payload bytes (not a probe) was acknowledged.
    pub(super) fn acked(&mut self, size: usize) {
        if size > self.floor {
            self.large_losses = 0;
        }
    }

    /// A packet of `size` payload bytes (not a probe) was lost. Returns true when that reveals
    /// a black hole: new packets fall back to the floor and the search starts over later.
    pub(super) fn lost(&mut self, size: usize, now: Instant) -> bool {
        if size <= self.floor {
            return false;
        }
        self.large_losses += 1;
        if self.large_losses < BLACK_HOLE_LOSSES {
            return false;
        }
        self.large_losses = 0;
        self.too_big = self.current;
        self.current = self.floor;
        self.research_at = Some(now + RESEARCH);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::{PathMtu, RESEARCH};
    use crate::Instant;

    const T0: Instant = Instant::ZERO;

    /// Runs a search against a path that carries payloads up to `fits`.
    fn search(m: &mut PathMtu, fits: usize) -> usize {
        let mut seq = 0u16;
        while let Some(size) = m.probe_due(T0) {
            seq += 1;
            m.probe_sent(seq, size);
            assert_eq!(m.probe_seq(), Some(seq));
            if size <= fits {
                m.probe_acked();
            } else {
                m.probe_lost();
            }
            assert!(seq < 100, "the search ends");
        }
        m.current()
    }

    #[test]
    fn binary_search_converges_below_the_path_and_restarts_later() {
        let mut m = PathMtu::new(1200, 1452);
        let found = search(&mut m, 1352);
        assert!((1352 - 16..=1352).contains(&found), "{found}");
        assert_eq!(m.probe_due(T0), None, "done");
        assert!(m.probe_due(T0 + RESEARCH).is_some(), "searches again after a while");
        assert_eq!(search(&mut PathMtu::new(1200, 1452), 9000), 1452, "up to the ceiling");
        assert_eq!(search(&mut PathMtu::new(1200, 1200), 9000), 1200, "no room: no probe");
    }

    #[test]
    fn repeated_losses_of_large_packets_fall_back_to_the_floor() {
        let mut m = PathMtu::new(1200, 1452);
        search(&mut m, 1452);
        assert!(!m.lost(1200, T0), "floor-size losses are congestion");
        assert!(!m.lost(1452, T0));
        m.acked(1452);
        assert!(!m.lost(1452, T0));
        assert!(!m.lost(1452, T0));
        assert!(m.lost(1452, T0), "three in a row");
        assert_eq!(m.current(), 1200);
        assert_eq!(m.probe_due(T0), None, "no probing right after a black hole");
    }
}
