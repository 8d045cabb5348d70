//! A fixed-length set of piece indices, stored as the wire's big-endian bitfield.

/// Which pieces a peer (or we) have. Bit 0 is the high bit of byte 0, as on the wire.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

impl Bitfield {
    /// An empty bitfield of `len` pieces.
    pub fn new(len: u32) -> Self {
        Bitfield { bytes: vec![0; len.div_ceil(8) as usize], len, ones: 0 }
    }

    /// A bitfield of `len` pieces, all set.
    pub fn full(len: u32) -> Self {
        let mut b = Bitfield { bytes: vec![0xff; len.div_ceil(8) as usize], len, ones: len };
        b.clear_spare_bits();
        b
    }

    /// Builds from wire bytes; `None` if the byte count does not match `len`.
    ///
    /// Spare bits past `len` are cleared rather than refused: some clients set them.
    pub fn from_bytes(bytes: &[u8], len: u32) -> Option<Self> {
        if bytes.len() != len.div_ceil(8) as usize {
            return None;
        }
        let mut b = Bitfield { bytes: bytes.to_vec(), len, ones: 0 };
        b.clear_spare_bits();
        b.ones = b.bytes.iter().map(|x| x.count_ones()).sum();
        Some(b)
    }

    fn clear_spare_bits(&mut self) {
        let spare = (self.bytes.len() as u32 * 8 - self.len) as u8;
        if spare > 0 {
            if let Some(last) = self.bytes.last_mut() {
                *last &= 0xffu8 << spare;
            }
        }
    }

    /// Number of pieces this bitfield covers.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when it covers no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether piece `i` is set; false for indices out of range.
    pub fn get(&self, i: u32) -> bool {
        if i >= self.len {
            return false;
        }
        self.bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// Sets or clears piece `i`; returns whether the bit changed. Out-of-range is ignored.
    pub fn set(&mut self, i: u32, value: bool) -> bool {
        if i >= self.len || self.get(i) == value {
            return false;
        }
        let mask = 0x80 >> (i % 8);
        let byte = &mut self.bytes[(i / 8) as usize];
        if value {
            *byte |= mask;
            self.ones += 1;
        } else {
            *byte &= !mask;
            self.ones -= 1;
        }
        true
    }

    /// Number of set pieces.
    pub fn count_ones(&self) -> u32 {
        self.ones
    }

    /// True when every piece is set.
    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    /// The wire representation.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Indices of set pieces, in order.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes.iter().enumerate().flat_map(move |(bi, &byte)| {
            let base = bi as u32 * 8;
            (0..8u32).filter(move |bit| byte & (0x80 >> bit) != 0).map(move |bit| base + bit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_count() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0, true));
        assert!(b.set(9, true));
        assert!(!b.set(9, true));
        assert!(!b.set(10, true));
        assert_eq!(b.count_ones(), 2);
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 9]);
        assert!(b.set(0, false));
        assert_eq!(b.count_ones(), 1);
    }

    #[test]
    fn from_bytes_checks_length_and_clears_spare_bits() {
        assert!(Bitfield::from_bytes(&[0xff], 10).is_none());
        let b = Bitfield::from_bytes(&[0xff, 0xff], 10).unwrap();
        assert_eq!(b.count_ones(), 10);
        assert!(b.is_full());
        assert_eq!(b.as_bytes(), &[0xff, 0xc0]);
        assert_eq!(Bitfield::full(10), b);
    }
}
