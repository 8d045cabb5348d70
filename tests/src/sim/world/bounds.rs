//! The bounds oracle (job bytes and disk reads in flight) and the violations it records.

use super::state::World;

const MAX_VIOLATIONS: usize = 50;

impl World {
    pub(super) fn violation(&mut self, what: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(format!("t={:.3}s {what}", self.now.as_micros() as f64 / 1e6));
        }
    }

    pub(super) fn check_bounds(&mut self, host: usize) {
        let b = &self.bounds;
        let (in_flight, reads_bound) = (b.in_flight, b.reads);
        let h = self.eh(host);
        let job_bytes = h.job_bytes;
        let reads = h.reads;
        if job_bytes > in_flight {
            self.violation(format!("host {host}: {job_bytes} bytes in hash/write jobs, bound {in_flight}"));
        }
        if reads > reads_bound {
            self.violation(format!("host {host}: {reads} disk reads in flight, bound {reads_bound}"));
        }
    }
}
