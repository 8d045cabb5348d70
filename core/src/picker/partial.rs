//! Block-level state of one piece that is being downloaded.

use crate::types::ConnId;

/// Block state value meaning "received"; any other value counts outstanding requesters.
const RECEIVED: u8 = u8::MAX;

/// The blocks of one in-flight piece: who they are requested from and which have arrived.
#[derive(Clone)]
pub(super) struct Partial {
    /// Per block: number of peers it is outstanding at, or `RECEIVED`.
    blocks: Vec<u8>,
    /// Outstanding requests as (block index, peer).
    requests: Vec<(u32, ConnId)>,
    /// Peers that sent at least one accepted block (banned if the piece fails its hash).
    contributors: Vec<ConnId>,
    /// Blocks neither received nor requested.
    free: u32,
    /// Blocks received.
    received: u32,
}

impl Partial {
    /// A piece of `block_count` blocks, none requested.
    pub(super) fn new(block_count: u32) -> Self {
        Partial {
            blocks: vec![0; block_count as usize],
            requests: Vec::new(),
            contributors: Vec::new(),
            free: block_count,
            received: 0,
        }
    }

    /// Blocks neither received nor requested.
    pub(super) fn free(&self) -> u32 {
        self.free
    }

    /// True when nothing was received and nothing is outstanding: the piece can be forgotten.
    pub(super) fn is_untouched(&self) -> bool {
        self.free as usize == self.blocks.len()
    }

    /// True when every block has been received.
    pub(super) fn is_complete(&self) -> bool {
        self.received as usize == self.blocks.len()
    }

    /// Peers that sent accepted blocks of this piece.
    pub(super) fn contributors(&self) -> &[ConnId] {
        &self.contributors
    }

    /// Requests up to `max` free blocks from `conn`, reporting each index to `push`.
    pub(super) fn take_free(&mut self, conn: ConnId, max: usize, mut push: impl FnMut(u32)) -> usize {
        let mut taken = 0;
        if self.free == 0 {
            return 0;
        }
        for (idx, state) in self.blocks.iter_mut().enumerate() {
            if taken == max {
                break;
            }
            if *state == 0 {
                *state = 1;
                self.requests.push((idx as u32, conn));
                push(idx as u32);
                taken += 1;
            }
        }
        self.free -= taken as u32;
        taken
    }

    /// End-game: requests up to `max` blocks that are outstanding at between 1 and `threshold`
    /// other peers (but not at `conn`) from `conn` too.
    pub(super) fn take_duplicates(
        &mut self,
        conn: ConnId,
        threshold: u8,
        max: usize,
        mut push: impl FnMut(u32),
    ) -> usize {
        let mut mine = vec![false; self.blocks.len()];
        for &(idx, c) in &self.requests {
            if c == conn {
                mine[idx as usize] = true;
            }
        }
        let mut taken = 0;
        for (idx, state) in self.blocks.iter_mut().enumerate() {
            if taken == max {
                break;
            }
            if *state != RECEIVED && (1..=threshold).contains(state) && !mine[idx] {
                *state += 1;
                self.requests.push((idx as u32, conn));
                push(idx as u32);
                taken += 1;
            }
        }
        taken
    }

    /// Records block `idx` from `conn`. `None` if it was not outstanding at `conn` (or already
    /// received); otherwise the other peers it was also requested from, now forgotten.
    pub(super) fn receive(&mut self, conn: ConnId, idx: u32) -> Option<Vec<ConnId>> {
        let state = *self.blocks.get(idx as usize)?;
        if state == RECEIVED || !self.requests.contains(&(idx, conn)) {
            return None;
        }
        Some(self.mark_received(conn, idx))
    }

    /// Records block `idx` from `conn`, which we had stopped waiting for there: kept unless
    /// already received. Returns the peers it is outstanding at (now forgotten) and whether
    /// it was free.
    pub(super) fn receive_late(&mut self, conn: ConnId, idx: u32) -> Option<(Vec<ConnId>, bool)> {
        let state = *self.blocks.get(idx as usize)?;
        if state == RECEIVED {
            return None;
        }
        let was_free = state == 0;
        if was_free {
            self.free -= 1;
        }
        Some((self.mark_received(conn, idx), was_free))
    }

    /// Marks block `idx` received from `conn` (a contributor now); forgets its requests and
    /// returns the peers other than `conn` it was outstanding at.
    fn mark_received(&mut self, conn: ConnId, idx: u32) -> Vec<ConnId> {
        self.blocks[idx as usize] = RECEIVED;
        self.received += 1;
        let mut others = Vec::new();
        self.requests.retain(|&(i, c)| {
            if i != idx {
                return true;
            }
            if c != conn {
                others.push(c);
            }
            false
        });
        if !self.contributors.contains(&conn) {
            self.contributors.push(conn);
        }
        others
    }

    /// Forgets the request of block `idx` at `conn`. Returns whether that made the block free
    /// (`None` if there was no such request).
    pub(super) fn release(&mut self, conn: ConnId, idx: u32) -> Option<bool> {
        let at = self.requests.iter().position(|&r| r == (idx, conn))?;
        self.requests.swap_remove(at);
        Some(self.drop_requester(idx))
    }

    /// Forgets every request outstanding at `conn`; returns how many blocks became free.
    pub(super) fn release_all(&mut self, conn: ConnId) -> u32 {
        let mut released = Vec::new();
        self.requests.retain(|&(idx, c)| {
            if c == conn {
                released.push(idx);
            }
            c != conn
        });
        released.into_iter().filter(|&idx| self.drop_requester(idx)).count() as u32
    }

    fn drop_requester(&mut self, idx: u32) -> bool {
        // Invariant: every entry in `requests` counts once in its block's state, and a
        // received block has no entries left.
        let state = &mut self.blocks[idx as usize];
        debug_assert!(*state != RECEIVED && *state > 0);
        *state -= 1;
        if *state == 0 {
            self.free += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);

    #[test]
    fn request_receive_release() {
        let mut p = Partial::new(3);
        let mut got = Vec::new();
        assert_eq!(p.take_free(A, 2, |i| got.push(i)), 2);
        assert_eq!(got, [0, 1]);
        assert_eq!(p.free(), 1);
        assert_eq!(p.receive(B, 0), None, "not requested from B");
        assert_eq!(p.receive(A, 0), Some(vec![]));
        assert_eq!(p.receive(A, 0), None, "already received");
        assert_eq!(p.release(A, 1), Some(true));
        assert_eq!(p.release(A, 1), None);
        assert_eq!(p.free(), 2);
        assert_eq!(p.contributors(), &[A]);
        assert!(!p.is_complete() && !p.is_untouched());
    }

    #[test]
    fn a_late_block_is_kept_unless_already_received() {
        let mut p = Partial::new(3);
        p.take_free(A, 3, |_| {});
        p.release_all(A);
        p.take_free(B, 1, |_| {});
        assert_eq!(p.receive_late(A, 0), Some((vec![B], false)), "outstanding at B: B is told");
        assert_eq!(p.receive_late(A, 1), Some((vec![], true)), "free");
        assert_eq!(p.receive_late(A, 1), None, "already received");
        assert_eq!((p.free(), p.contributors()), (1, &[A][..]));
        assert_eq!(p.receive(B, 0), None, "B's request is gone");
    }

    #[test]
    fn duplicates_are_reported_on_receipt() {
        let mut p = Partial::new(2);
        p.take_free(A, 2, |_| {});
        let mut got = Vec::new();
        assert_eq!(p.take_duplicates(B, 1, 10, |i| got.push(i)), 2);
        assert_eq!(p.take_duplicates(B, 2, 10, |_| {}), 0, "never twice to the same peer");
        assert_eq!(p.receive(B, 1), Some(vec![A]));
        assert_eq!(p.release_all(A), 0, "block 0 is still outstanding at B");
        assert_eq!(p.release_all(B), 1);
        assert_eq!(p.free(), 1);
    }
}
