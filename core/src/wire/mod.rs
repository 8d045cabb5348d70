//! The BitTorrent peer wire protocol codec: BEP 3 messages, the BEP 6 fast extension,
//! BEP 10 extension-protocol framing and the BEP 9 / BEP 11 extension messages.
//!
//! Pure data in, data out: [`Handshake`] and [`Message`] encode into caller-owned buffers, and
//! the incremental [`Decoder`] turns socket bytes (in any chunking) into messages, checking
//! every length and index a hostile peer controls.

mod decoder;
mod extended;
mod fast;
mod handshake;
mod message;
mod metadata;
mod pex;

pub use decoder::{Decoded, Decoder};
pub use extended::{ExtendedHandshake, EXTENDED_HANDSHAKE_ID};
pub use fast::allowed_fast_set;
pub use handshake::{Handshake, HANDSHAKE_LEN};
pub use message::{encode_piece_header, piece_header, Message, PIECE_FRAME_HEADER};
pub use metadata::{metadata_piece_count, MetadataMessage, MAX_METADATA_SIZE, METADATA_PIECE_LEN, UT_METADATA};
pub use pex::{PexMessage, PEX_ENCRYPTION, PEX_HOLEPUNCH, PEX_OUTGOING, PEX_SEED, PEX_UTP, UT_PEX};

/// Bounds the decoder enforces on what a peer may send.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Largest frame accepted, counting the id byte but not the 4-byte length prefix.
    pub max_message_len: u32,
    /// Largest block a peer may send us in `piece` or ask of us in `request`.
    pub max_block_len: u32,
}

impl Default for Limits {
    /// 256 KiB frames (room for 128 KiB blocks and bitfields of two million pieces) and
    /// 128 KiB blocks, the limits libtorrent applies too.
    fn default() -> Self {
        Limits { max_message_len: 256 * 1024, max_block_len: 128 * 1024 }
    }
}

/// A protocol violation by the peer (or a misuse of the decoder); the connection should close.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum WireError {
    /// The length prefix announces a frame larger than [`Limits::max_message_len`].
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
    /// A `piece` carries, or a `request` asks for, more than [`Limits::max_block_len`] bytes.
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
    /// Caller bug: `next_message` was called before `take_handshake` returned the handshake.
    #[error("the handshake has not been taken from the decoder yet")]
    HandshakePending,
    /// Caller bug: `take_handshake` was called on a decoder not expecting a handshake.
    #[error("the decoder is not expecting a handshake")]
    NoHandshakeExpected,
}
