//! The world's event queue: events ordered by (time, sequence number of scheduling).
//!
//! The heap holds only small keys; the events themselves (some carry payload buffers and job
//! results) sit still in a slab, so the heap's sift moves 24 bytes per level instead of whole
//! events. Ties in time pop in scheduling order, which keeps runs a pure function of the seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use shoal_core::Instant;

/// Heap key: when, in which order, and where the event waits in the slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    at: Instant,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Key {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and the earliest event must come out first.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A min-queue of events by (time, scheduling order).
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Key>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { heap: BinaryHeap::new(), slots: Vec::new(), free: Vec::new(), seq: 0 }
    }
}

impl<E> EventQueue<E> {
    /// Schedules `ev` at `at`, after everything already scheduled at that time.
    pub fn push(&mut self, at: Instant, ev: E) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(ev);
                s
            }
            None => {
                self.slots.push(Some(ev));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 events pending")
            }
        };
        self.heap.push(Key { at, seq: self.seq, slot });
    }

    /// Takes the earliest event.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        let key = self.heap.pop()?;
        let ev = self.slots[key.slot as usize].take().expect("a key's slot holds its event");
        self.free.push(key.slot);
        Some((key.at, ev))
    }

    /// Time of the earliest event.
    pub fn peek_time(&self) -> Option<Instant> {
        self.heap.peek().map(|k| k.at)
    }

    /// Whether no event waits.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_scheduling_order() {
        let mut q = EventQueue::default();
        let t = Instant::from_micros;
        q.push(t(5), "late");
        q.push(t(1), "first");
        q.push(t(3), "tie-a");
        q.push(t(3), "tie-b");
        assert_eq!(q.pop(), Some((t(1), "first")));
        q.push(t(3), "tie-c"); // reuses a slot, still after the earlier ties
        q.push(t(2), "second");
        let order: Vec<&str> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["second", "tie-a", "tie-b", "tie-c", "late"]);
        assert!(q.is_empty());
    }
}
