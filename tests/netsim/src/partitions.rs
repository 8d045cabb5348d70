//! Cuts between hosts.

use std::collections::BTreeMap;
use std::time::Duration;

/// Pairs of hosts (by the world's index) that cannot reach each other, each until a deadline.
#[derive(Clone, Debug, Default)]
pub struct Partitions {
    cuts: BTreeMap<(usize, usize), Duration>,
}

impl Partitions {
    /// Cuts `a` from `b` (both ways) until `until`, replacing an earlier cut between them.
    pub fn cut(&mut self, a: usize, b: usize, until: Duration) {
        self.cuts.insert((a.min(b), a.max(b)), until);
    }

    /// Heals every cut at once.
    pub fn heal_all(&mut self) {
        self.cuts.clear();
    }

    /// Until when `a` and `b` are cut from each other, if they are at `now`.
    pub fn cut_until(&self, a: usize, b: usize, now: Duration) -> Option<Duration> {
        self.cuts.get(&(a.min(b), a.max(b))).copied().filter(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Partitions;

    #[test]
    fn a_cut_holds_both_ways_until_its_deadline() {
        let s = Duration::from_secs(1);
        let mut p = Partitions::default();
        p.cut(3, 1, 5 * s);
        assert_eq!(p.cut_until(1, 3, s), Some(5 * s));
        assert_eq!(p.cut_until(3, 1, s), Some(5 * s));
        assert_eq!(p.cut_until(1, 2, s), None);
        assert_eq!(p.cut_until(1, 3, 5 * s), None, "healed at the deadline");
        p.cut(1, 2, 9 * s);
        p.heal_all();
        assert_eq!(p.cut_until(1, 2, s), None);
    }
}
