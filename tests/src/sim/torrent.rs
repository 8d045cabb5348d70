//! Seeded test torrents: pseudo-random content, a layout drawn from the seed, and the source
//! bytes every honest download must end up equal to.

use std::ops::Range;
use std::rc::Rc;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shoal_core::create::TorrentBuilder;
use shoal_core::Metainfo;

/// A torrent made from seeded pseudo-random data, with that data.
#[derive(Clone, Debug)]
pub struct SimTorrent {
    /// The parsed torrent.
    pub meta: Metainfo,
    /// The whole torrent's bytes (shared by every simulated disk that holds them).
    pub data: Rc<[u8]>,
}

impl SimTorrent {
    /// Builds a torrent of `files` (name, length) naming `trackers` (one tier each).
    pub fn new(seed: u64, piece_length: u32, files: &[(String, u64)], trackers: &[String]) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut builder = TorrentBuilder::new(format!("sim-{seed}"));
        builder.set_piece_length(piece_length).set_trackers(trackers.iter().map(|t| vec![t.clone()]).collect());
        if files.len() == 1 {
            builder.set_single_file(true);
        }
        let total: u64 = files.iter().map(|f| f.1).sum();
        let mut data = vec![0u8; total as usize];
        rng.fill_bytes(&mut data);
        for (name, len) in files {
            builder.add_file(name.split('/').map(str::to_string).collect(), *len);
        }
        let mut hasher = builder.piece_hasher();
        hasher.update(&data);
        let bytes = builder.build(hasher.finish()).expect("sim torrent builds");
        let meta = Metainfo::from_bytes(&bytes).expect("sim torrent parses");
        SimTorrent { meta, data: data.into() }
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

    /// Byte range of a piece in the torrent's data.
    pub fn piece_range(&self, piece: u32) -> Range<usize> {
        let start = piece as usize * self.meta.info.piece_length as usize;
        start..start + self.meta.info.piece_size(piece) as usize
    }
}
