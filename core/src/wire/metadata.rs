//! BEP 9 `ut_metadata` messages: the info dictionary, asked of peers 16 KiB at a time.
//!
//! Each message is the payload of an extended message (BEP 10) under the id the receiver
//! advertised for `ut_metadata`: a bencoded dictionary (`msg_type`, `piece`, and `total_size`
//! for data), followed, for data, by the piece's raw bytes.

use std::collections::BTreeMap;

use bt_bencode::{ByteString, Value};
use serde::Deserialize;

use super::error::WireError;
use crate::bencode::{self, BencodeError};

/// The extension's name in the extended handshake's `m` dictionary.
pub const UT_METADATA: &str = "ut_metadata";

/// Bytes per metadata piece (the last one may be shorter).
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;

/// Largest info dictionary fetched or served: 1024 pieces.
pub const MAX_METADATA_SIZE: u64 = 16 << 20;

/// Nesting accepted in the dictionary (it needs one level).
const MAX_NESTING: usize = 8;

/// One `ut_metadata` message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MetadataMessage {
    /// `msg_type` 0: please send this piece.
    Request {
        /// The piece index.
        piece: u32,
    },
    /// `msg_type` 1: a piece of the info dictionary.
    Data {
        /// The piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u64,
        /// The piece's bytes.
        data: Vec<u8>,
    },
    /// `msg_type` 2: the sender will not send this piece.
    Reject {
        /// The piece index.
        piece: u32,
    },
}

impl MetadataMessage {
    /// The extended-message payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut dict: BTreeMap<ByteString, Value> = BTreeMap::new();
        let (msg_type, piece, data) = match self {
            MetadataMessage::Request { piece } => (0u64, piece, None),
            MetadataMessage::Data { piece, total_size, data } => {
                dict.insert("total_size".into(), Value::from(*total_size));
                (1, piece, Some(data))
            }
            MetadataMessage::Reject { piece } => (2, piece, None),
        };
        dict.insert("msg_type".into(), Value::from(msg_type));
        dict.insert("piece".into(), Value::from(u64::from(*piece)));
        // Serialising an in-memory dictionary with byte-string keys cannot fail.
        let mut out = bt_bencode::to_vec(&Value::Dict(dict)).expect("a bencode Value always serialises");
        if let Some(data) = data {
            out.extend_from_slice(data);
        }
        out
    }

    /// Parses a received payload. Unknown keys are ignored; a missing or ill-typed required
    /// key, an unknown `msg_type`, or bytes that are not a dictionary are errors.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let bad = |why: &str| WireError::BadMetadataMessage(why.to_owned());
        let (dict, data) = match bencode::check(payload, MAX_NESTING) {
            Ok(()) => (payload, &[][..]),
            // Piece data follows the dictionary.
            Err(BencodeError::TrailingData { offset }) => payload.split_at(offset),
            Err(e) => return Err(WireError::BadMetadataMessage(e.to_string())),
        };
        let mut de = bt_bencode::Deserializer::from_slice(dict);
        let value = Value::deserialize(&mut de).map_err(|e| WireError::BadMetadataMessage(e.to_string()))?;
        let Value::Dict(dict) = value else {
            return Err(bad("not a dictionary"));
        };
        let int = |key: &str| dict.get(key.as_bytes()).and_then(Value::as_u64);
        let piece = int("piece").and_then(|p| u32::try_from(p).ok()).ok_or_else(|| bad("no valid `piece`"))?;
        match int("msg_type") {
            Some(0) => Ok(MetadataMessage::Request { piece }),
            Some(1) => {
                let total_size = int("total_size").ok_or_else(|| bad("data without `total_size`"))?;
                Ok(MetadataMessage::Data { piece, total_size, data: data.to_vec() })
            }
            Some(2) => Ok(MetadataMessage::Reject { piece }),
            _ => Err(bad("unknown `msg_type`")),
        }
    }
}

/// Number of metadata pieces of an info dictionary of `size` bytes.
pub fn metadata_piece_count(size: u64) -> u32 {
    // Callers bound `size` by MAX_METADATA_SIZE; saturate rather than wrap for anything else.
    u32::try_from(size.div_ceil(u64::from(METADATA_PIECE_LEN))).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        for m in [
            MetadataMessage::Request { piece: 3 },
            MetadataMessage::Reject { piece: 0 },
            MetadataMessage::Data { piece: 1, total_size: 20_000, data: vec![b'e'; 3616] },
            MetadataMessage::Data { piece: 0, total_size: 0, data: vec![] },
        ] {
            assert_eq!(MetadataMessage::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn encodes_the_bep_9_layout() {
        assert_eq!(MetadataMessage::Request { piece: 0 }.encode(), b"d8:msg_typei0e5:piecei0ee");
        let data = MetadataMessage::Data { piece: 1, total_size: 8, data: b"xy".to_vec() }.encode();
        assert_eq!(data, b"d8:msg_typei1e5:piecei1e10:total_sizei8eexy");
    }

    #[test]
    fn hostile_payloads_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"i1e",
            b"d8:msg_typei0ee",
            b"d8:msg_typei9e5:piecei0ee",
            b"d8:msg_typei1e5:piecei0ee",
            b"d8:msg_typei0e5:piecei-1ee",
            b"d8:msg_typei0e5:piecei4294967296ee",
            b"d8:msg_typei0e5:piece",
            b"d8:msg_type18446744073709551615:",
            b"d1:xllllllllllllllllleeeeeeeeeeeeeeeeee8:msg_typei0e5:piecei0ee",
        ] {
            assert!(
                matches!(MetadataMessage::decode(bad), Err(WireError::BadMetadataMessage(_))),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
        // Unknown keys are fine.
        let ok = b"d5:extrai1e8:msg_typei2e5:piecei7ee";
        assert_eq!(MetadataMessage::decode(ok), Ok(MetadataMessage::Reject { piece: 7 }));
    }

    #[test]
    fn piece_counts() {
        assert_eq!(metadata_piece_count(0), 0);
        assert_eq!(metadata_piece_count(1), 1);
        assert_eq!(metadata_piece_count(16384), 1);
        assert_eq!(metadata_piece_count(16385), 2);
        assert_eq!(metadata_piece_count(MAX_METADATA_SIZE), 1024);
    }
}
