//! The BEP 6 allowed-fast set: pieces a peer may download from us while choked.

use std::net::Ipv4Addr;

use sha1::{Digest, Sha1};

use crate::types::InfoHash;

/// The BEP 6 canonical allowed-fast set of `k` pieces for the peer at `ip`.
///
/// Both sides can compute it, which is why the algorithm is fixed: the /24 network of the
/// peer and the info hash seed a SHA-1 chain whose 32-bit words, modulo the piece count, are
/// the pieces. `k` is clamped to the piece count; it is meant to be small (BEP 6 suggests 10).
pub fn allowed_fast_set(info_hash: &InfoHash, ip: Ipv4Addr, piece_count: u32, k: usize) -> Vec<u32> {
    let k = k.min(usize::try_from(piece_count).unwrap_or(usize::MAX));
    let mut set = Vec::with_capacity(k);
    if k == 0 {
        return set;
    }
    let network = u32::from(ip) & 0xFFFF_FF00;
    let mut hasher = Sha1::new();
    hasher.update(network.to_be_bytes());
    hasher.update(info_hash.0);
    let mut digest: [u8; 20] = hasher.finalize().into();
    loop {
        for word in digest.chunks_exact(4) {
            // chunks_exact(4) yields 4-byte slices only.
            let word = u32::from_be_bytes(word.try_into().expect("4-byte chunk"));
            let piece = word % piece_count;
            if !set.contains(&piece) {
                set.push(piece);
                if set.len() == k {
                    return set;
                }
            }
        }
        digest = Sha1::digest(digest).into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEP6_IP: Ipv4Addr = Ipv4Addr::new(80, 4, 4, 200);

    #[test]
    fn matches_bep6_example_vectors() {
        let hash = InfoHash([0xAA; 20]);
        assert_eq!(allowed_fast_set(&hash, BEP6_IP, 1313, 7), [1059, 431, 808, 1217, 287, 376, 1188]);
        assert_eq!(allowed_fast_set(&hash, BEP6_IP, 1313, 9), [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]);
    }

    #[test]
    fn depends_only_on_the_slash_24() {
        let hash = InfoHash([0xAA; 20]);
        let same_net = allowed_fast_set(&hash, Ipv4Addr::new(80, 4, 4, 1), 1313, 7);
        assert_eq!(same_net, allowed_fast_set(&hash, BEP6_IP, 1313, 7));
        assert_ne!(allowed_fast_set(&hash, Ipv4Addr::new(80, 4, 5, 200), 1313, 7), same_net);
    }

    #[test]
    fn k_is_clamped_to_the_piece_count() {
        let hash = InfoHash([7; 20]);
        assert!(allowed_fast_set(&hash, BEP6_IP, 0, 10).is_empty());
        let mut all = allowed_fast_set(&hash, BEP6_IP, 3, 10);
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2]);
    }
}
