//! The bounds oracle (job bytes and disk reads in flight, violations) and the trace hash.

use super::World;

/// A fast 64-bit mixer for the event trace (not cryptographic; only equality matters).
#[derive(Clone, Copy, Debug)]
pub struct Trace(pub u64);
impl Trace {
    pub(super) fn mix(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x100_0000_01b3).rotate_left(29) ^ (x >> 7);
    }
    pub(super) fn bytes(&mut self, d: &[u8]) {
        self.mix(d.len() as u64);
        let mut w = [0u8; 8];
        let n = d.len().min(8);
        w[..n].copy_from_slice(&d[..n]);
        self.mix(u64::from_le_bytes(w));
        w = [0u8; 8];
        w[..n].copy_from_slice(&d[d.len() - n..]);
        self.mix(u64::from_le_bytes(w));
    }
}

/// Engine, network and disk bounds the oracles hold engines to.
#[derive(Clone, Debug)]
pub(super) struct Bounds {
    pub(super) send: u64,
    pub(super) in_flight: u64,
    pub(super) reads: usize,
    pub(super) peers: usize,
}

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
