//! Test torrents: seeded pseudo-random data in files of any shape, with the tracker they name.

use std::ops::Range;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use shoal_core::create::TorrentBuilder;
use shoal_core::Metainfo;

/// The one tracker every test torrent names; the world's fake tracker answers it.
pub(crate) const TRACKER: &str = "http://tracker.sim/announce";

/// The piece length of most test torrents.
pub(crate) const PIECE: u32 = 32 * 1024;

/// One mebibyte.
pub(crate) const MIB: u64 = 1 << 20;

/// One file of a test torrent.
#[derive(Clone, Debug)]
pub(crate) struct FileSpec {
    /// Path below the torrent's directory, components separated by `/`.
    pub path: &'static str,
    /// Length in bytes.
    pub len: u64,
    /// A BEP 47 pad file (zeros, never on disk).
    pub pad: bool,
}

/// A regular file.
pub(crate) fn file(path: &'static str, len: u64) -> FileSpec {
    FileSpec { path, len, pad: false }
}

/// A pad file.
pub(crate) fn pad(path: &'static str, len: u64) -> FileSpec {
    FileSpec { path, len, pad: true }
}

/// A torrent made from seeded pseudo-random data, with that data.
#[derive(Clone, Debug)]
pub(crate) struct TestTorrent {
    /// The parsed torrent.
    pub meta: Metainfo,
    /// The whole torrent's bytes, pad files (zeros) included.
    pub data: Vec<u8>,
}

impl TestTorrent {
    /// Builds a multi-file torrent over `files`, naming [`TRACKER`].
    pub(crate) fn new(seed: u64, piece_length: u32, files: &[FileSpec]) -> Self {
        Self::build(seed, piece_length, files, false)
    }

    /// Like [`TestTorrent::new`], with the BEP 27 private flag set in the info dictionary.
    pub(crate) fn private(seed: u64, piece_length: u32, files: &[FileSpec]) -> Self {
        Self::build(seed, piece_length, files, true)
    }

    fn build(seed: u64, piece_length: u32, files: &[FileSpec], private: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut builder = TorrentBuilder::new(format!("torrent-{seed}"));
        builder.set_piece_length(piece_length).set_trackers(vec![vec![TRACKER.to_string()]]).set_private(private);
        let mut data = Vec::new();
        for f in files {
            builder.add_file(f.path.split('/').map(str::to_string).collect(), f.len);
            let start = data.len();
            data.resize(start + f.len as usize, 0);
            if !f.pad {
                rng.fill_bytes(&mut data[start..]);
            }
        }
        let mut hasher = builder.piece_hasher();
        hasher.update(&data);
        let bytes = builder.build(hasher.finish()).expect("test torrent builds");
        let mut meta = Metainfo::from_bytes(&bytes).expect("test torrent parses");
        // The builder has no BEP 47 attributes; flag pad files on the parsed form (the info-hash
        // does not cover this, which does not matter inside one process).
        assert_eq!(meta.info.files.len(), files.len(), "parser kept every file");
        for (entry, f) in meta.info.files.iter_mut().zip(files) {
            entry.attr.pad = f.pad;
        }
        TestTorrent { meta, data }
    }

    /// Number of pieces.
    pub(crate) fn pieces(&self) -> u32 {
        self.meta.info.piece_count()
    }

    /// Byte range of a piece in the torrent's data.
    pub(crate) fn piece_range(&self, piece: u32) -> Range<usize> {
        let start = piece as usize * self.meta.info.piece_length as usize;
        start..start + self.meta.info.piece_size(piece) as usize
    }

    /// Byte range of a file in the torrent's data.
    pub(crate) fn file_range(&self, file: usize) -> Range<usize> {
        let f = &self.meta.info.files[file];
        f.offset as usize..(f.offset + f.length) as usize
    }

    /// Pieces overlapping file `file`.
    pub(crate) fn file_pieces(&self, file: usize) -> Range<u32> {
        let r = self.file_range(file);
        if r.is_empty() {
            return 0..0;
        }
        let plen = self.meta.info.piece_length as usize;
        (r.start / plen) as u32..((r.end - 1) / plen + 1) as u32
    }
}

/// A 1 MiB-ish single-directory torrent of plain files.
pub(crate) fn plain_torrent(seed: u64) -> TestTorrent {
    TestTorrent::new(seed, PIECE, &[file("a.bin", 700_001), file("b.bin", 300_000)])
}

/// A one-file torrent of `mib` MiB in 256 KiB pieces.
pub(crate) fn big_torrent(seed: u64, mib: u64) -> TestTorrent {
    TestTorrent::new(seed, 256 * 1024, &[file("big.bin", mib * MIB)])
}
