//! Seeded test torrents: pseudo-random content, a layout drawn from the seed, and the source
//! bytes every honest download must end up equal to.
//!
//! The content is a function of (seed, offset), never stored: each aligned 8-byte word is a
//! bijective mix of its index and a seeded key, so no two words of a torrent are equal and a
//! block in the wrong place, a shifted or stale buffer all differ from the source. Disks and
//! oracles regenerate the bytes they need instead of reading a 64 MiB copy, which halves the
//! memory traffic of a check (the simulator is bound by it).

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shoal_core::create::TorrentBuilder;
use shoal_core::Metainfo;

/// A torrent made from seeded pseudo-random data, and the means to produce and check that data.
#[derive(Clone, Debug)]
pub struct SimTorrent {
    /// The parsed torrent.
    pub meta: Metainfo,
    /// Seeds the content.
    key: u64,
}

/// Bytes of content produced per step when hashing the whole torrent.
const CHUNK: usize = 1 << 20;

/// The multiplier of word indices: odd, so `k ↦ k·M` is a bijection.
const M: u64 = 0x9e37_79b9_7f4a_7c15;

/// The source word at word index `k` (bytes `8k..8k+8`, little-endian) under `key`: an
/// odd multiple of the index plus the key, then an xorshift. Both steps are bijections, so
/// distinct indices give distinct words.
#[inline(always)]
fn word(key: u64, k: u64) -> u64 {
    finish(key.wrapping_add(k.wrapping_mul(M)))
}

#[inline(always)]
fn finish(x: u64) -> u64 {
    x ^ (x >> 29)
}

/// Pre-images of four consecutive words from index `k`; each steps by `4·M` to the next four.
/// (Four independent lanes with an add each let the compiler vectorize fill and check.)
#[inline(always)]
fn lanes(key: u64, k: u64) -> [u64; 4] {
    let x = key.wrapping_add(k.wrapping_mul(M));
    [x, x.wrapping_add(M), x.wrapping_add(M.wrapping_mul(2)), x.wrapping_add(M.wrapping_mul(3))]
}

impl SimTorrent {
    /// Builds a torrent of `files` (name, length) naming `trackers` (one tier each).
    pub fn new(seed: u64, piece_length: u32, files: &[(String, u64)], trackers: &[String]) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let key = rng.random::<u64>();
        let mut builder = TorrentBuilder::new(format!("sim-{seed}"));
        builder.set_piece_length(piece_length).set_trackers(trackers.iter().map(|t| vec![t.clone()]).collect());
        if files.len() == 1 {
            builder.set_single_file(true);
        }
        let total: u64 = files.iter().map(|f| f.1).sum();
        for (name, len) in files {
            builder.add_file(name.split('/').map(str::to_string).collect(), *len);
        }
        let mut hasher = builder.piece_hasher();
        let mut chunk = vec![0u8; CHUNK];
        let mut at = 0;
        while at < total {
            let n = (total - at).min(CHUNK as u64) as usize;
            fill(key, at, &mut chunk[..n]);
            hasher.update(&chunk[..n]);
            at += n as u64;
        }
        let bytes = builder.build(hasher.finish()).expect("sim torrent builds");
        let meta = Metainfo::from_bytes(&bytes).expect("sim torrent parses");
        SimTorrent { meta, key }
    }

    /// A layout drawn from `rng`: one file, or several with odd, tiny and empty ones.
    pub fn layout(rng: &mut ChaCha8Rng, total: u64) -> Vec<(String, u64)> {
        if rng.random_bool(0.4) {
            return vec![("single.bin".into(), total)];
        }
        let n = rng.random_range(2..=6);
        let mut files = Vec::new();
        let mut left = total;
        for i in 0..n {
            let len = if i == n - 1 {
                left
            } else {
                match rng.random_range(0..4) {
                    0 => 0,
                    1 => rng.random_range(1..=left.clamp(1, 100)).min(left),
                    _ => rng.random_range(0..=left / 2),
                }
            };
            left -= len;
            files.push((format!("dir{}/f{i}.bin", i % 2), len));
        }
        files
    }

    /// Number of pieces.
    pub fn pieces(&self) -> u32 {
        self.meta.info.piece_count()
    }

    /// The torrent's size in bytes.
    pub fn len(&self) -> u64 {
        self.meta.info.total_length
    }

    /// Whether the torrent holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Byte range of a piece in the torrent's data.
    pub fn piece_range(&self, piece: u32) -> Range<u64> {
        let start = piece as u64 * self.meta.info.piece_length as u64;
        start..start + self.meta.info.piece_size(piece) as u64
    }

    /// The source bytes at `range` (which must lie inside the torrent).
    pub fn bytes(&self, range: Range<u64>) -> Vec<u8> {
        debug_assert!(range.end <= self.len(), "{range:?} inside the torrent");
        let mut out = vec![0u8; (range.end - range.start) as usize];
        fill(self.key, range.start, &mut out);
        out
    }

    /// Writes the source bytes at `offset` into `out` (which must end inside the torrent).
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        debug_assert!(offset + out.len() as u64 <= self.len(), "{offset}+{} inside the torrent", out.len());
        fill(self.key, offset, out);
    }

    /// Whether `data` equals the source bytes at `offset` (false past the torrent's end).
    pub fn matches(&self, offset: u64, data: &[u8]) -> bool {
        offset.checked_add(data.len() as u64).is_some_and(|end| end <= self.len()) && same(self.key, offset, data)
    }
}

/// Writes the source bytes at `offset` into `out`.
fn fill(key: u64, offset: u64, out: &mut [u8]) {
    // Bytes up to the next word boundary, whole words four at a time, then the rest.
    let head = ((8 - offset % 8) % 8).min(out.len() as u64) as usize;
    let (first, rest) = out.split_at_mut(head);
    if head > 0 {
        let skip = (offset % 8) as usize;
        first.copy_from_slice(&word(key, offset / 8).to_le_bytes()[skip..skip + head]);
    }
    let k0 = (offset + head as u64) / 8;
    let quads = rest.len() / 32;
    let (body, tail) = rest.split_at_mut(quads * 32);
    let mut x = lanes(key, k0);
    for quad in body.chunks_exact_mut(32) {
        for (j, w) in quad.chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&finish(x[j]).to_le_bytes());
            x[j] = x[j].wrapping_add(M.wrapping_mul(4));
        }
    }
    let k = k0 + 4 * quads as u64;
    for (i, w) in tail.chunks_mut(8).enumerate() {
        let n = w.len();
        w.copy_from_slice(&word(key, k + i as u64).to_le_bytes()[..n]);
    }
}

/// Whether `data` equals the source bytes at `offset`.
fn same(key: u64, offset: u64, data: &[u8]) -> bool {
    let head = ((8 - offset % 8) % 8).min(data.len() as u64) as usize;
    let (first, rest) = data.split_at(head);
    if head > 0 {
        let skip = (offset % 8) as usize;
        if first != &word(key, offset / 8).to_le_bytes()[skip..skip + head] {
            return false;
        }
    }
    let k0 = (offset + head as u64) / 8;
    let quads = rest.len() / 32;
    let (body, tail) = rest.split_at(quads * 32);
    let mut x = lanes(key, k0);
    // Branch-free over runs of 4 KiB (so it vectorizes), stopping at the first bad run.
    for run in body.chunks(4096) {
        let mut diff = [0u64; 4];
        for quad in run.chunks_exact(32) {
            for (j, w) in quad.chunks_exact(8).enumerate() {
                diff[j] |= u64::from_le_bytes(w.try_into().expect("chunks of 8")) ^ finish(x[j]);
                x[j] = x[j].wrapping_add(M.wrapping_mul(4));
            }
        }
        if diff != [0; 4] {
            return false;
        }
    }
    let k = k0 + 4 * quads as u64;
    tail.chunks(8).enumerate().all(|(i, w)| w == &word(key, k + i as u64).to_le_bytes()[..w.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn torrent() -> SimTorrent {
        SimTorrent::new(9, 32 * 1024, &[("a".into(), 100_003), ("b".into(), 7)], &["http://t/a".into()])
    }

    #[test]
    fn any_range_reads_as_part_of_the_whole() {
        let tt = torrent();
        let whole = tt.bytes(0..tt.len());
        for (s, e) in [(0, 1), (3, 5), (5, 21), (8, 16), (7, 9), (16_384, 32_768), (99_990, 100_010)] {
            assert_eq!(tt.bytes(s..e), &whole[s as usize..e as usize], "{s}..{e}");
            assert!(tt.matches(s, &whole[s as usize..e as usize]));
        }
        assert!(tt.matches(tt.len(), &[]));
    }

    #[test]
    fn any_difference_is_seen() {
        let tt = torrent();
        let good = tt.bytes(40..40 + 9000);
        for i in [0, 1, 7, 8, 4095, 4096, 8991, 8999] {
            let mut bad = good.clone();
            bad[i] ^= 1;
            assert!(!tt.matches(40, &bad), "flip at {i}");
        }
        // Unaligned starts and ends.
        let odd = tt.bytes(43..43 + 8005);
        for i in [0, 4, 5, 6, 4000, 8000, 8004] {
            let mut bad = odd.clone();
            bad[i] ^= 0x80;
            assert!(!tt.matches(43, &bad), "flip at {i} of an unaligned range");
        }
        // The right bytes at the wrong place, and a read past the end.
        assert!(!tt.matches(48, &good));
        assert!(!tt.matches(32 * 1024 + 40, &good));
        assert!(!tt.matches(tt.len() - 3, &tt.bytes(tt.len() - 4..tt.len())));
        // Another seed, other content.
        let other = SimTorrent::new(10, 32 * 1024, &[("a".into(), 100_010)], &["http://t/a".into()]);
        assert!(!other.matches(40, &good));
    }

    #[test]
    fn piece_hashes_are_sha1_of_the_content() {
        use sha1::{Digest, Sha1};
        let tt = torrent();
        for p in 0..tt.pieces() {
            let digest: [u8; 20] = Sha1::digest(tt.bytes(tt.piece_range(p))).into();
            assert_eq!(tt.meta.info.pieces[p as usize], digest, "piece {p}");
        }
    }
}
