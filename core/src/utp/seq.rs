//! Comparisons of 16-bit sequence numbers that wrap around.

/// Whether `a` comes before `b`, reading the smaller distance around the circle.
pub(super) fn before(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) < 0
}

/// How far `b` is past `a` (`b - a`, wrapping).
pub(super) fn distance(a: u16, b: u16) -> u16 {
    b.wrapping_sub(a)
}

#[cfg(test)]
mod tests {
    use super::{before, distance};

    #[test]
    fn ordering_wraps() {
        assert!(before(1, 2));
        assert!(before(65535, 0));
        assert!(!before(0, 65535));
        assert!(!before(7, 7));
        assert_eq!(distance(65534, 1), 3);
    }
}
