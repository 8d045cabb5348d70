//! Checking existing data: which pieces to verify next, the verify jobs in flight, progress.

use std::collections::HashMap;

use crate::bitfield::Bitfield;
use crate::types::JobId;

/// One run over a torrent's pieces, verifying those not known good yet. The torrent builds the
/// jobs (it knows the files and hashes); the checker says which pieces and counts results.
/// Dropping it forgets its jobs: results that come back later are ignored.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Checker {
    total: u32,
    next: u32,
    in_flight: HashMap<JobId, u32>,
    checked: u32,
}

/// A verify job's result, counted.
#[derive(Debug, PartialEq)]
pub(crate) struct Verified {
    /// The piece the job was for.
    pub piece: u32,
    /// Pieces verified so far in this run.
    pub checked: u32,
    /// It was the last one: the check is over.
    pub done: bool,
}

impl Checker {
    /// A check of `total` pieces, none started yet.
    pub(super) fn new(total: u32) -> Checker {
        Checker { total, ..Checker::default() }
    }

    /// The next piece to verify, if fewer than `max_jobs` are in flight; pieces in `have`
    /// (resume data, an interrupted check) are known good and skipped.
    pub(super) fn next_piece(&mut self, max_jobs: usize, have: &Bitfield) -> Option<u32> {
        while self.in_flight.len() < max_jobs && self.next < self.total {
            let piece = self.next;
            self.next += 1;
            if !have.get(piece) {
                return Some(piece);
            }
        }
        None
    }

    /// Job `id` verifies `piece` (from [`Checker::next_piece`]).
    pub(super) fn started(&mut self, id: JobId, piece: u32) {
        self.in_flight.insert(id, piece);
    }

    /// Counts the result of job `id`; `None` if the job is not one of this check's.
    pub(super) fn finished(&mut self, id: JobId) -> Option<Verified> {
        let piece = self.in_flight.remove(&id)?;
        self.checked += 1;
        Some(Verified { piece, checked: self.checked, done: self.is_done() })
    }

    /// Every piece was looked at and no job is left in flight.
    pub(super) fn is_done(&self) -> bool {
        self.in_flight.is_empty() && self.next >= self.total
    }

    /// Pieces verified so far.
    pub(super) fn checked(&self) -> u32 {
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::{Checker, Verified};
    use crate::bitfield::Bitfield;
    use crate::types::JobId;

    #[test]
    fn pieces_go_out_in_order_up_to_the_job_limit_skipping_known_good_ones() {
        let mut have = Bitfield::new(5);
        have.set(1, true);
        let mut check = Checker::new(5);
        assert_eq!(check.next_piece(2, &have), Some(0));
        check.started(JobId(10), 0);
        assert_eq!(check.next_piece(2, &have), Some(2), "piece 1 is had");
        check.started(JobId(11), 2);
        assert_eq!(check.next_piece(2, &have), None, "two in flight");
        assert_eq!(check.finished(JobId(11)), Some(Verified { piece: 2, checked: 1, done: false }));
        assert_eq!(check.next_piece(2, &have), Some(3));
        check.started(JobId(12), 3);
        assert_eq!(check.next_piece(2, &have), None);
        assert_eq!(check.finished(JobId(10)), Some(Verified { piece: 0, checked: 2, done: false }));
        assert_eq!(check.next_piece(2, &have), Some(4));
        check.started(JobId(13), 4);
        assert_eq!(check.finished(JobId(12)), Some(Verified { piece: 3, checked: 3, done: false }));
        assert_eq!(check.next_piece(2, &have), None, "every piece was handed out");
        assert_eq!(check.finished(JobId(13)), Some(Verified { piece: 4, checked: 4, done: true }));
        assert!(check.is_done());
        assert_eq!(check.checked(), 4);
    }

    #[test]
    fn a_skipped_piece_without_a_job_leaves_nothing_to_wait_for() {
        let have = Bitfield::new(2);
        let mut check = Checker::new(2);
        // The torrent found no hash for these pieces and started no job.
        assert_eq!(check.next_piece(4, &have), Some(0));
        assert_eq!(check.next_piece(4, &have), Some(1));
        assert_eq!(check.next_piece(4, &have), None);
        assert!(check.is_done());
    }

    #[test]
    fn results_of_other_jobs_are_not_counted() {
        let mut check = Checker::new(1);
        check.next_piece(1, &Bitfield::new(1));
        check.started(JobId(1), 0);
        assert_eq!(check.finished(JobId(2)), None);
        assert_eq!(check.checked(), 0);
        assert!(!check.is_done());
    }
}
