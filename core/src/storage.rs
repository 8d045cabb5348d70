//! Mapping between the torrent's byte stream and its files: pieces and blocks to file spans.

use crate::metainfo::Info;

/// A contiguous run of bytes inside one file (or one pad file, which is never on disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSpan {
    /// Index of the file in the torrent's file list.
    pub file: u32,
    /// Byte offset inside that file.
    pub offset: u64,
    /// Number of bytes.
    pub len: u32,
    /// A BEP 47 pad file: never written, reads as zeros.
    pub pad: bool,
}

#[derive(Clone, Debug)]
struct FileExtent {
    start: u64,
    len: u64,
    pad: bool,
}

/// The torrent's file table in the form the data path needs: offsets, lengths, pad flags.
#[derive(Clone, Debug)]
pub struct FileLayout {
    files: Vec<FileExtent>,
    piece_length: u64,
    total: u64,
}

impl FileLayout {
    /// Builds the layout of a parsed `info` dictionary.
    pub fn new(info: &Info) -> Self {
        let files = info.files.iter().map(|f| FileExtent { start: f.offset, len: f.length, pad: f.is_pad() }).collect();
        FileLayout { files, piece_length: info.piece_length as u64, total: info.total_length }
    }

    /// Total bytes of the torrent, pad files included.
    pub fn total_length(&self) -> u64 {
        self.total
    }

    /// Appends the spans covering `len` bytes at torrent offset `start`, in order.
    ///
    /// Zero-length files are skipped; a range past the end is clipped.
    pub fn spans(&self, start: u64, len: u32, out: &mut Vec<FileSpan>) {
        let end = start.saturating_add(len as u64).min(self.total);
        if start >= end {
            return;
        }
        // First file whose end is past `start`.
        let mut i = self.files.partition_point(|f| f.start + f.len <= start);
        let mut pos = start;
        while pos < end && i < self.files.len() {
            let f = &self.files[i];
            if f.len > 0 {
                let file_end = f.start + f.len;
                let take = end.min(file_end) - pos;
                out.push(FileSpan { file: i as u32, offset: pos - f.start, len: take as u32, pad: f.pad });
                pos += take;
            }
            i += 1;
        }
    }

    /// The spans of a whole piece.
    pub fn piece_spans(&self, piece: u32, piece_size: u32) -> Vec<FileSpan> {
        let mut out = Vec::new();
        self.spans(piece as u64 * self.piece_length, piece_size, &mut out);
        out
    }

    /// Pieces that overlap file `file` (empty range for empty files).
    pub fn file_pieces(&self, file: usize) -> std::ops::Range<u32> {
        let Some(f) = self.files.get(file) else { return 0..0 };
        if f.len == 0 {
            return 0..0;
        }
        let first = f.start / self.piece_length;
        let last = (f.start + f.len - 1) / self.piece_length;
        first as u32..last as u32 + 1
    }

    /// Number of files, pad files included.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Whether file `file` is a pad file.
    pub fn is_pad(&self, file: usize) -> bool {
        self.files.get(file).is_some_and(|f| f.pad)
    }

    /// Byte length of file `file`.
    pub fn file_len(&self, file: usize) -> u64 {
        self.files.get(file).map_or(0, |f| f.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(lens: &[(u64, bool)], piece_length: u64) -> FileLayout {
        let mut start = 0;
        let files = lens
            .iter()
            .map(|&(len, pad)| {
                let f = FileExtent { start, len, pad };
                start += len;
                f
            })
            .collect();
        FileLayout { files, piece_length, total: start }
    }

    #[test]
    fn spans_cross_files_and_skip_empty_ones() {
        let l = layout(&[(10, false), (0, false), (5, true), (20, false)], 16);
        let mut out = Vec::new();
        l.spans(8, 16, &mut out);
        assert_eq!(
            out,
            vec![
                FileSpan { file: 0, offset: 8, len: 2, pad: false },
                FileSpan { file: 2, offset: 0, len: 5, pad: true },
                FileSpan { file: 3, offset: 0, len: 9, pad: false },
            ]
        );
        assert_eq!(l.file_pieces(3), 0..3);
        assert_eq!(l.file_pieces(1), 0..0);
    }

    #[test]
    fn spans_are_clipped_at_the_end() {
        let l = layout(&[(10, false)], 16);
        let mut out = Vec::new();
        l.spans(4, 100, &mut out);
        assert_eq!(out, vec![FileSpan { file: 0, offset: 4, len: 6, pad: false }]);
        out.clear();
        l.spans(10, 5, &mut out);
        assert!(out.is_empty());
    }
}
