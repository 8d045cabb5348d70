//! How a receiver's reads cut the bytes of one send.

use std::ops::Range;

use rand::Rng;

/// How the bytes of one send reach the receiver: a socket returns whatever has arrived, so a
/// receiver must cope with any cut.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reads {
    /// Each send is read in one piece.
    Whole,
    /// Pieces of random length, from 1 to this many bytes.
    UpTo(usize),
    /// A send longer than `longer_than` bytes is, with probability `p`, read in two pieces cut
    /// at a random point.
    Split {
        /// Sends up to this length are read whole.
        longer_than: usize,
        /// Probability of a cut.
        p: f64,
    },
}

impl Reads {
    /// The pieces (byte ranges, in order, covering `0..len`) in which a send of `len` bytes is
    /// read. An empty send is read as one empty piece (without a draw), so that a world sees
    /// every send arrive.
    pub fn pieces<R: Rng + ?Sized>(self, rng: &mut R, len: usize) -> Vec<Range<usize>> {
        if len == 0 {
            return one_piece(0);
        }
        match self {
            Reads::Whole => one_piece(len),
            Reads::UpTo(max) => {
                let mut pieces = Vec::new();
                let mut at = 0;
                while at < len {
                    let take = rng.random_range(1..=max.min(len - at));
                    pieces.push(at..at + take);
                    at += take;
                }
                pieces
            }
            Reads::Split { longer_than, p } => {
                if len > longer_than && rng.random_bool(p) {
                    let cut = rng.random_range(1..len);
                    vec![0..cut, cut..len]
                } else {
                    one_piece(len)
                }
            }
        }
    }
}

/// The whole send as one read.
fn one_piece(len: usize) -> Vec<Range<usize>> {
    std::iter::once(0..len).collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::Reads;

    #[test]
    fn pieces_cover_the_send_in_order_within_their_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for len in [1, 2, 100, 5000] {
            for reads in [Reads::Whole, Reads::UpTo(3000), Reads::Split { longer_than: 64, p: 0.5 }] {
                let pieces = reads.pieces(&mut rng, len);
                assert_eq!(pieces.first().map(|r| r.start), Some(0), "{reads:?} {len}");
                assert_eq!(pieces.last().map(|r| r.end), Some(len), "{reads:?} {len}");
                assert!(pieces.windows(2).all(|w| w[0].end == w[1].start), "{reads:?} {len}: {pieces:?}");
                assert!(pieces.iter().all(|r| !r.is_empty()), "{reads:?} {len}: {pieces:?}");
                match reads {
                    Reads::Whole => assert_eq!(pieces.len(), 1),
                    Reads::UpTo(max) => assert!(pieces.iter().all(|r| r.len() <= max)),
                    Reads::Split { longer_than, .. } => {
                        assert!(pieces.len() <= 2 && (len > longer_than || pieces.len() == 1))
                    }
                }
            }
        }
        for reads in [Reads::Whole, Reads::UpTo(10), Reads::Split { longer_than: 0, p: 1.0 }] {
            assert_eq!(reads.pieces(&mut rng, 0), super::one_piece(0), "{reads:?}: an empty send is one empty read");
        }
    }

    #[test]
    fn the_same_seed_cuts_the_same_way() {
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..50).map(|_| Reads::UpTo(100).pieces(&mut rng, 1000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }
}
