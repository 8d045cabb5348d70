//! What a peer can get wrong on the wire.

/// A protocol violation by the peer; the connection should close.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum WireError {
    /// The length prefix announces a frame larger than [`Limits::max_message_len`](super::Limits::max_message_len).
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong {
        /// The announced length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A known message id arrived with a frame length that message cannot have.
    #[error("message id {id} cannot be {len} bytes long")]
    BadLength {
        /// The message id.
        id: u8,
        /// The frame length.
        len: u32,
    },
    /// A message names a piece index at or past the torrent's piece count.
    #[error("message id {id} names piece {piece}, but the torrent has {piece_count} pieces")]
    PieceIndexOutOfRange {
        /// The message id.
        id: u8,
        /// The piece named.
        piece: u32,
        /// The torrent's piece count.
        piece_count: u32,
    },
    /// A bitfield whose byte count does not match the torrent's piece count.
    #[error("bitfield of {len} bytes, expected {expected}")]
    BadBitfieldLength {
        /// Its byte count.
        len: u32,
        /// The byte count the piece count needs.
        expected: u32,
    },
    /// A `piece` carries, or a `request` asks for, more than [`Limits::max_block_len`](super::Limits::max_block_len) bytes.
    #[error("block of {len} bytes exceeds the limit of {max}")]
    BlockTooLong {
        /// The block's length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The 68-byte handshake is malformed.
    #[error("bad handshake: {0}")]
    BadHandshake(&'static str),
    /// The BEP 10 extended handshake payload is not a bencoded dictionary.
    #[error("bad extended handshake: {0}")]
    BadExtendedHandshake(String),
    /// A BEP 9 `ut_metadata` message that cannot be parsed.
    #[error("bad ut_metadata message: {0}")]
    BadMetadataMessage(String),
    /// A BEP 11 `ut_pex` message that cannot be parsed.
    #[error("bad ut_pex message: {0}")]
    BadPexMessage(String),
    /// A BEP 55 `ut_holepunch` message that cannot be parsed.
    #[error("bad ut_holepunch message: {0}")]
    BadHolepunchMessage(#[from] super::holepunch::HolepunchDecodeError),
}
