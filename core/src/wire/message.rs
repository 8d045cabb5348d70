//! Peer wire messages: their encoding and the per-message checks of the decoder.

use super::error::WireError;
use super::limits::Limits;
use crate::types::BlockRef;

/// Message ids on the wire (BEP 3, BEP 6, BEP 10).
pub(super) mod id {
    pub(crate) const CHOKE: u8 = 0;
    pub(crate) const UNCHOKE: u8 = 1;
    pub(crate) const INTERESTED: u8 = 2;
    pub(crate) const NOT_INTERESTED: u8 = 3;
    pub(crate) const HAVE: u8 = 4;
    pub(crate) const BITFIELD: u8 = 5;
    pub(crate) const REQUEST: u8 = 6;
    pub(crate) const PIECE: u8 = 7;
    pub(crate) const CANCEL: u8 = 8;
    pub(crate) const PORT: u8 = 9;
    pub(crate) const SUGGEST: u8 = 13;
    pub(crate) const HAVE_ALL: u8 = 14;
    pub(crate) const HAVE_NONE: u8 = 15;
    pub(crate) const REJECT: u8 = 16;
    pub(crate) const ALLOWED_FAST: u8 = 17;
    pub(crate) const EXTENDED: u8 = 20;
}

/// Bytes of a `piece` frame before the block data: id, index, offset.
const PIECE_HEADER_LEN: u32 = 9;

/// One peer wire message (everything after the handshake).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// A zero-length frame that keeps the connection open.
    KeepAlive,
    /// The sender will not serve our requests.
    Choke,
    /// The sender will serve our requests.
    Unchoke,
    /// The sender wants pieces we have.
    Interested,
    /// The sender no longer wants pieces we have.
    NotInterested,
    /// The sender has completed and verified `piece`.
    Have {
        /// The piece.
        piece: u32,
    },
    /// The sender's pieces, bit 0 being the high bit of byte 0; spare bits are not checked.
    Bitfield(Vec<u8>),
    /// The sender asks for a block.
    Request(BlockRef),
    /// A block of data.
    Piece {
        /// The piece it belongs to.
        piece: u32,
        /// Its byte offset in the piece.
        offset: u32,
        /// The block's bytes.
        data: Vec<u8>,
    },
    /// The sender withdraws a request.
    Cancel(BlockRef),
    /// The sender's DHT port (BEP 5).
    Port(u16),
    /// BEP 6: the sender suggests we download `piece`.
    Suggest {
        /// The piece.
        piece: u32,
    },
    /// BEP 6: the sender has every piece.
    HaveAll,
    /// BEP 6: the sender has no piece.
    HaveNone,
    /// BEP 6: the sender will not serve this request.
    Reject(BlockRef),
    /// BEP 6: the sender will serve `piece` even while choking us.
    AllowedFast {
        /// The piece.
        piece: u32,
    },
    /// BEP 10: an extension message; `id` 0 is the extended handshake.
    Extended {
        /// The extension's message id, as the receiver assigned it.
        id: u8,
        /// The bencoded payload (and, for `ut_metadata` data, the bytes after it).
        payload: Vec<u8>,
    },
}

/// The frame length (id byte plus payload) of a payload we are about to send.
fn frame_len(payload_len: usize) -> u32 {
    // Our own payloads are bounded far below 4 GiB (blocks, bitfields, extension dicts);
    // a larger one is a bug in the caller, not input from a peer.
    u32::try_from(payload_len)
        .ok()
        .and_then(|n| n.checked_add(1))
        .expect("outgoing message payload must be smaller than 4 GiB")
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_header(out: &mut Vec<u8>, len: u32, id: u8) {
    put_u32(out, len);
    out.push(id);
}

fn put_block(out: &mut Vec<u8>, id: u8, block: &BlockRef) {
    put_header(out, 13, id);
    put_u32(out, block.piece);
    put_u32(out, block.offset);
    put_u32(out, block.len);
}

impl Message {
    /// Appends this message's length-prefixed frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::KeepAlive => put_u32(out, 0),
            Message::Choke => put_header(out, 1, id::CHOKE),
            Message::Unchoke => put_header(out, 1, id::UNCHOKE),
            Message::Interested => put_header(out, 1, id::INTERESTED),
            Message::NotInterested => put_header(out, 1, id::NOT_INTERESTED),
            Message::Have { piece } => {
                put_header(out, 5, id::HAVE);
                put_u32(out, *piece);
            }
            Message::Bitfield(bits) => {
                put_header(out, frame_len(bits.len()), id::BITFIELD);
                out.extend_from_slice(bits);
            }
            Message::Request(block) => put_block(out, id::REQUEST, block),
            Message::Piece { piece, offset, data } => {
                // frame_len counts the id byte; the header helper wants the data length alone.
                let data_len = frame_len(data.len()) - 1;
                encode_piece_header(out, *piece, *offset, data_len);
                out.extend_from_slice(data);
            }
            Message::Cancel(block) => put_block(out, id::CANCEL, block),
            Message::Port(port) => {
                put_header(out, 3, id::PORT);
                out.extend_from_slice(&port.to_be_bytes());
            }
            Message::Suggest { piece } => {
                put_header(out, 5, id::SUGGEST);
                put_u32(out, *piece);
            }
            Message::HaveAll => put_header(out, 1, id::HAVE_ALL),
            Message::HaveNone => put_header(out, 1, id::HAVE_NONE),
            Message::Reject(block) => put_block(out, id::REJECT, block),
            Message::AllowedFast { piece } => {
                put_header(out, 5, id::ALLOWED_FAST);
                put_u32(out, *piece);
            }
            Message::Extended { id: ext_id, payload } => {
                // The extended id byte counts as payload after the message id.
                put_header(out, frame_len(payload.len() + 1), id::EXTENDED);
                out.push(*ext_id);
                out.extend_from_slice(payload);
            }
        }
    }
}

/// Length of a `piece` frame's header: length prefix, id, index and begin.
pub const PIECE_FRAME_HEADER: usize = 13;

/// The 13-byte header of a `piece` frame carrying `data_len` bytes of block data.
pub fn piece_header(piece: u32, offset: u32, data_len: u32) -> [u8; PIECE_FRAME_HEADER] {
    // Blocks we send are at most a few hundred KiB; a length this close to 4 GiB is our bug.
    let len = data_len.checked_add(PIECE_HEADER_LEN).expect("outgoing block must be smaller than 4 GiB");
    let mut h = [0u8; PIECE_FRAME_HEADER];
    h[..4].copy_from_slice(&len.to_be_bytes());
    h[4] = id::PIECE;
    h[5..9].copy_from_slice(&piece.to_be_bytes());
    h[9..].copy_from_slice(&offset.to_be_bytes());
    h
}

/// Appends the 13-byte header of a `piece` frame carrying `data_len` bytes of block data.
///
/// The caller sends the block data right after it, so the data need not be copied into the
/// frame buffer.
pub fn encode_piece_header(out: &mut Vec<u8>, piece: u32, offset: u32, data_len: u32) {
    // Blocks we send are at most a few hundred KiB; a length this close to 4 GiB is our bug.
    let len = data_len.checked_add(PIECE_HEADER_LEN).expect("outgoing block must be smaller than 4 GiB");
    put_header(out, len, id::PIECE);
    put_u32(out, piece);
    put_u32(out, offset);
}

/// What the decoder should do with a frame once its length and id are known.
pub(super) enum FrameKind {
    /// A message we understand; wait for the whole frame and parse it.
    Known,
    /// An id we do not know; skip the frame, as libtorrent does.
    Unknown,
}

/// Checks a frame's id against its length (the id byte included), before its body arrives,
/// so a peer cannot make us buffer a frame we would refuse anyway.
pub(super) fn check_header(
    msg_id: u8,
    len: u32,
    limits: &Limits,
    piece_count: Option<u32>,
) -> Result<FrameKind, WireError> {
    let exact = |want: u32| {
        if len == want {
            Ok(FrameKind::Known)
        } else {
            Err(WireError::BadLength { id: msg_id, len })
        }
    };
    match msg_id {
        id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => exact(1),
        id::HAVE_ALL | id::HAVE_NONE => exact(1),
        id::HAVE | id::SUGGEST | id::ALLOWED_FAST => exact(5),
        id::REQUEST | id::CANCEL | id::REJECT => exact(13),
        id::PORT => exact(3),
        id::BITFIELD => {
            // Zero-length frames are keep-alives and never get here, so this is the byte count.
            let bytes = len.saturating_sub(1);
            match piece_count {
                Some(n) if bytes != n.div_ceil(8) => {
                    Err(WireError::BadBitfieldLength { len: bytes, expected: n.div_ceil(8) })
                }
                _ => Ok(FrameKind::Known),
            }
        }
        id::PIECE => {
            let Some(data_len) = len.checked_sub(PIECE_HEADER_LEN) else {
                return Err(WireError::BadLength { id: msg_id, len });
            };
            if data_len > limits.max_block_len {
                return Err(WireError::BlockTooLong { len: data_len, max: limits.max_block_len });
            }
            Ok(FrameKind::Known)
        }
        // An extended message needs at least its extended id byte.
        id::EXTENDED if len < 2 => Err(WireError::BadLength { id: msg_id, len }),
        id::EXTENDED => Ok(FrameKind::Known),
        _ => Ok(FrameKind::Unknown),
    }
}

/// Reads the big-endian u32 at `at`; the caller has checked the body length in `check_header`.
fn u32_at(body: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&body[at..at + 4]);
    u32::from_be_bytes(word)
}

/// The index, offset and data of a `piece` body that `check_header` accepted (at least 8
/// bytes), borrowing the data.
pub(super) fn piece_body(body: &[u8], piece_count: Option<u32>) -> Result<(u32, u32, &[u8]), WireError> {
    let piece = u32_at(body, 0);
    if let Some(n) = piece_count.filter(|&n| piece >= n) {
        return Err(WireError::PieceIndexOutOfRange { id: id::PIECE, piece, piece_count: n });
    }
    Ok((piece, u32_at(body, 4), &body[8..]))
}

/// Parses the body (everything after the id byte) of a frame `check_header` accepted.
pub(super) fn parse_body(
    msg_id: u8,
    body: &[u8],
    limits: &Limits,
    piece_count: Option<u32>,
) -> Result<Message, WireError> {
    let index = |piece: u32| match piece_count {
        Some(n) if piece >= n => Err(WireError::PieceIndexOutOfRange { id: msg_id, piece, piece_count: n }),
        _ => Ok(piece),
    };
    let block = |body: &[u8]| -> Result<BlockRef, WireError> {
        Ok(BlockRef { piece: index(u32_at(body, 0))?, offset: u32_at(body, 4), len: u32_at(body, 8) })
    };
    let msg = match msg_id {
        id::CHOKE => Message::Choke,
        id::UNCHOKE => Message::Unchoke,
        id::INTERESTED => Message::Interested,
        id::NOT_INTERESTED => Message::NotInterested,
        id::HAVE => Message::Have { piece: index(u32_at(body, 0))? },
        id::BITFIELD => Message::Bitfield(body.to_vec()),
        id::REQUEST => {
            let b = block(body)?;
            if b.len > limits.max_block_len {
                return Err(WireError::BlockTooLong { len: b.len, max: limits.max_block_len });
            }
            Message::Request(b)
        }
        id::PIECE => {
            let (piece, offset, data) = piece_body(body, piece_count)?;
            Message::Piece { piece, offset, data: data.to_vec() }
        }
        id::CANCEL => Message::Cancel(block(body)?),
        id::PORT => Message::Port(u16::from_be_bytes([body[0], body[1]])),
        id::SUGGEST => Message::Suggest { piece: index(u32_at(body, 0))? },
        id::HAVE_ALL => Message::HaveAll,
        id::HAVE_NONE => Message::HaveNone,
        id::REJECT => Message::Reject(block(body)?),
        id::ALLOWED_FAST => Message::AllowedFast { piece: index(u32_at(body, 0))? },
        id::EXTENDED => Message::Extended { id: body[0], payload: body[1..].to_vec() },
        // check_header sends unknown ids down the skip path, never here.
        _ => unreachable!("parse_body called for unknown message id {msg_id}"),
    };
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        msg.encode(&mut out);
        out
    }

    #[test]
    fn encodes_bep3_and_bep6_layouts() {
        let block = BlockRef { piece: 1, offset: 0x4000, len: 0x4000 };
        assert_eq!(encoded(&Message::KeepAlive), [0, 0, 0, 0]);
        assert_eq!(encoded(&Message::Interested), [0, 0, 0, 1, 2]);
        assert_eq!(encoded(&Message::Have { piece: 0x01020304 }), [0, 0, 0, 5, 4, 1, 2, 3, 4]);
        assert_eq!(encoded(&Message::Bitfield(vec![0xF0, 0x80])), [0, 0, 0, 3, 5, 0xF0, 0x80]);
        assert_eq!(encoded(&Message::Request(block)), [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]);
        assert_eq!(encoded(&Message::Reject(block))[4], 16);
        assert_eq!(encoded(&Message::Port(6881)), [0, 0, 0, 3, 9, 0x1A, 0xE1]);
        assert_eq!(encoded(&Message::HaveAll), [0, 0, 0, 1, 14]);
        assert_eq!(encoded(&Message::AllowedFast { piece: 9 }), [0, 0, 0, 5, 17, 0, 0, 0, 9]);
        assert_eq!(encoded(&Message::Extended { id: 3, payload: b"de".to_vec() }), [0, 0, 0, 4, 20, 3, b'd', b'e']);
    }

    #[test]
    fn piece_header_then_data_equals_the_whole_piece_frame() {
        let data = vec![0xAB; 100];
        let whole = encoded(&Message::Piece { piece: 7, offset: 16384, data: data.clone() });
        let mut split = Vec::new();
        encode_piece_header(&mut split, 7, 16384, 100);
        assert_eq!(split.len(), 13);
        split.extend_from_slice(&data);
        assert_eq!(whole, split);
        assert_eq!(piece_header(7, 16384, 100)[..], split[..PIECE_FRAME_HEADER]);
    }

    #[test]
    fn encode_appends_to_the_buffer() {
        let mut out = vec![1, 2];
        Message::Choke.encode(&mut out);
        Message::Unchoke.encode(&mut out);
        assert_eq!(out, [1, 2, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1]);
    }
}
