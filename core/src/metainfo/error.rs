//! Why a .torrent file is refused, and the bounds every one must stay within.

use crate::bencode::BencodeError;

/// Most files a torrent may list.
pub const MAX_FILES: usize = 1_000_000;
/// Most pieces a torrent may have.
pub const MAX_PIECES: usize = 10_000_000;
/// Largest piece length accepted (libtorrent accepts odd sizes, so only the range is checked).
pub const MAX_PIECE_LENGTH: u32 = 128 * 1024 * 1024;
/// Most tracker URLs (over all tiers) and most web seeds kept; the rest are dropped.
pub const MAX_URLS: usize = 1000;

/// Why a .torrent file (or an info dictionary) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    /// The bytes are not well-formed bencode (or are truncated, or nested too deeply).
    #[error(transparent)]
    Bencode(#[from] BencodeError),
    /// The bencode decoder refused the input.
    #[error("not bencode at byte {offset}: {reason}")]
    Decode {
        /// Where the decoder stopped.
        offset: usize,
        /// The decoder's own words.
        reason: String,
    },
    /// The top-level value is not a dictionary.
    #[error("not a torrent: the top-level value is not a dictionary")]
    NotADictionary,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong bencode type.
    #[error("wrong type for field `{field}`: expected {expected}")]
    WrongType {
        /// The field's key.
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
    /// `piece length` is 0 or larger than [`MAX_PIECE_LENGTH`].
    #[error("piece length {0} is out of range (1 byte to 128 MiB)")]
    BadPieceLength(u64),
    /// `pieces` is not a whole number of 20-byte SHA-1 hashes.
    #[error("`pieces` is {0} bytes long, not a multiple of 20")]
    BadPiecesLength(usize),
    /// The number of piece hashes does not match the data's length.
    #[error("torrent has {got} piece hashes but {total_length} bytes in pieces of {piece_length} need {expected}")]
    PieceCountMismatch {
        /// Hashes present.
        got: usize,
        /// Hashes needed.
        expected: u64,
        /// Sum of the file lengths.
        total_length: u64,
        /// The piece length.
        piece_length: u32,
    },
    /// The files add up to zero bytes.
    #[error("torrent has no data")]
    NoData,
    /// The file lengths add up to more than 2^64 bytes.
    #[error("file lengths overflow")]
    LengthOverflow,
    /// More than [`MAX_FILES`] files.
    #[error("too many files ({0}, at most {MAX_FILES})")]
    TooManyFiles(usize),
    /// More than [`MAX_PIECES`] pieces.
    #[error("too many pieces ({0}, at most {MAX_PIECES})")]
    TooManyPieces(usize),
    /// A file or directory name that could escape the download directory, or is otherwise unusable.
    #[error("unsafe file path {path:?}: {reason}")]
    UnsafePath {
        /// The offending path as found in the torrent (components joined with `/`).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A v2-only torrent: no v1 `pieces`, which this engine needs.
    #[error("v2-only torrents are not supported (no v1 `pieces` field)")]
    V2Only,
}
