//! The trace hash: every event and output of a run mixed into one number.

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
