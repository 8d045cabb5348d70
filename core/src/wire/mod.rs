//! The BitTorrent peer wire protocol codec: BEP 3 messages, the BEP 6 fast extension,
//! BEP 10 extension-protocol framing and the BEP 9 / BEP 11 / BEP 55 extension messages.
//!
//! Pure data in, data out: [`Handshake`] and [`Message`] encode into caller-owned buffers, and
//! the incremental [`HandshakeDecoder`] and [`Decoder`] turn socket bytes (in any chunking) into messages, checking
//! every length and index a hostile peer controls.

mod decoder;
mod error;
mod extended;
mod fast;
mod handshake;
mod holepunch;
mod limits;
mod message;
mod metadata;
mod pex;

pub use decoder::{Decoded, Decoder, HandshakeDecoder, HandshakeStep};
pub use error::WireError;
pub use extended::{ExtendedHandshake, EXTENDED_HANDSHAKE_ID};
pub use fast::allowed_fast_set;
pub use handshake::{Handshake, HANDSHAKE_LEN};
pub use holepunch::{
    HolepunchDecodeError, HolepunchError, HolepunchKind, HolepunchMessage, MAX_HOLEPUNCH_LEN, UT_HOLEPUNCH,
};
pub use limits::Limits;
pub use message::{encode_piece_header, piece_header, Message, PIECE_FRAME_HEADER};
pub use metadata::{metadata_piece_count, MetadataMessage, MAX_METADATA_SIZE, METADATA_PIECE_LEN, UT_METADATA};
pub use pex::{PexMessage, PEX_ENCRYPTION, PEX_HOLEPUNCH, PEX_OUTGOING, PEX_SEED, PEX_UTP, UT_PEX};
