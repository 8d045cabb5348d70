//! The incremental frame decoder: socket bytes in, messages out.

use super::error::WireError;
use super::handshake::{check_protocol_prefix, Handshake, HANDSHAKE_LEN};
use super::limits::Limits;
use super::message::{check_header, parse_body, piece_body, FrameKind, Message};

/// Length of the frame length prefix.
const PREFIX_LEN: usize = 4;

/// Turns bytes that arrive in arbitrary chunks into [`Message`]s.
///
/// Bytes are appended to one buffer and read through a cursor; consumed bytes are dropped only
/// when they outnumber the unread ones, so each byte is moved at most a bounded number of times.
/// After an error the decoder keeps returning it: the connection is to be closed.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    piece_count: Option<u32>,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    /// Bytes of a skipped (unknown id) frame that have not arrived yet.
    skip: usize,
    /// The first violation seen; sticky so a misbehaving caller cannot resynchronise on garbage.
    failed: Option<WireError>,
}

impl Decoder {
    /// A decoder for the message stream after the handshake.
    pub fn new(limits: Limits) -> Self {
        Decoder { limits, piece_count: None, buf: Vec::new(), pos: 0, skip: 0, failed: None }
    }

    /// Sets the torrent's piece count, enabling piece index and bitfield length checks.
    pub fn set_piece_count(&mut self, n: u32) {
        self.piece_count = Some(n);
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= self.buf.len() - self.pos {
            // Moving the unread bytes costs no more than the bytes already consumed.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Unread bytes held, for the engine's per-connection buffer bounds.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Decodes the next message; `Ok(None)` means more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buffered());
                self.pos += n;
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            match self.decode_frame() {
                Ok(Some(Frame::Message(msg))) => return Ok(Some(msg)),
                Ok(Some(Frame::Skipped)) => continue,
                Ok(None) => return Ok(None),
                Err(err) => return Err(self.fail(err)),
            }
        }
    }

    fn fail(&mut self, err: WireError) -> WireError {
        self.failed = Some(err.clone());
        err
    }

    /// Decodes or skips one frame at the cursor.
    fn decode_frame(&mut self) -> Result<Option<Frame>, WireError> {
        let (frame, used, skip) = match decode_one(&self.buf[self.pos..], &self.limits, self.piece_count)? {
            Some(step) => step,
            None => return Ok(None),
        };
        self.pos += used;
        self.skip = skip;
        Ok(Some(frame))
    }

    /// Like [`Decoder::next_message`] for bytes just received, without first copying them
    /// into the decoder when it holds nothing: whole frames are decoded straight from `input`
    /// (advanced past them), and only an incomplete tail is kept. Call until `Ok(None)`.
    pub fn next_message_from(&mut self, input: &mut &[u8]) -> Result<Option<Message>, WireError> {
        Ok(self.next_from(input)?.map(Decoded::into_message))
    }

    /// [`Decoder::next_message_from`], except that a `piece` message decoded straight from
    /// `input` borrows its block data from it ([`Decoded::Block`]) instead of copying it.
    pub fn next_from<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<Decoded<'a>>, WireError> {
        if self.failed.is_none() && self.skip == 0 && self.buffered() == 0 {
            if let Some(block) = self.block_at(input)? {
                return Ok(Some(block));
            }
            loop {
                match decode_one(input, &self.limits, self.piece_count) {
                    Ok(Some((frame, used, skip))) => {
                        *input = &input[used..];
                        self.skip = skip;
                        match frame {
                            Frame::Message(msg) => return Ok(Some(Decoded::Message(msg))),
                            Frame::Skipped if skip > 0 => break,
                            Frame::Skipped => continue,
                        }
                    }
                    Ok(None) => break,
                    Err(err) => return Err(self.fail(err)),
                }
            }
        }
        if !input.is_empty() {
            self.feed(input);
            *input = &[];
        }
        Ok(self.next_message()?.map(Decoded::Message))
    }

    /// A whole `piece` frame at the front of `input`, borrowed; `None` for anything else.
    fn block_at<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<Decoded<'a>>, WireError> {
        let bytes: &'a [u8] = input;
        let Some(prefix) = bytes.first_chunk::<PREFIX_LEN>() else { return Ok(None) };
        let len = u32::from_be_bytes(*prefix);
        // A keep-alive has no id byte: what follows it is the next frame's. Too long is an
        // error that `decode_one` reports.
        if len == 0 || len > self.limits.max_message_len || bytes.get(PREFIX_LEN) != Some(&super::message::id::PIECE) {
            return Ok(None);
        }
        let frame_len = PREFIX_LEN + len as usize;
        let Some(frame) = bytes.get(..frame_len) else { return Ok(None) };
        let checked = check_header(super::message::id::PIECE, len, &self.limits, self.piece_count)
            .and_then(|_| piece_body(&frame[PREFIX_LEN + 1..], self.piece_count));
        match checked {
            Ok((piece, offset, data)) => {
                *input = &bytes[frame_len..];
                Ok(Some(Decoded::Block { piece, offset, data }))
            }
            Err(err) => Err(self.fail(err)),
        }
    }
}

/// Reads the 68-byte handshake a connection starts with; [`HandshakeDecoder::take`] turns it
/// into the [`Decoder`] for the messages that follow, so no message can be read before the
/// handshake and no handshake after it.
#[derive(Debug)]
pub struct HandshakeDecoder {
    /// Holds the received bytes; handed over, with whatever follows the handshake, by `take`.
    decoder: Decoder,
}

/// What [`HandshakeDecoder::take`] found.
#[derive(Debug)]
pub enum HandshakeStep {
    /// The handshake is not all in yet: the decoder, handed back to be fed more.
    Pending(HandshakeDecoder),
    /// The peer's handshake, and the decoder for the messages after it (holding any bytes
    /// that arrived past the handshake).
    Done(Handshake, Decoder),
}

impl HandshakeDecoder {
    /// A decoder fed from the connection's first byte.
    pub fn new(limits: Limits) -> Self {
        HandshakeDecoder { decoder: Decoder::new(limits) }
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.decoder.feed(bytes);
    }

    /// Unread bytes held, for the engine's per-connection buffer bounds.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// Consumes the handshake from the front of the stream, or hands the decoder back until
    /// all 68 bytes are in.
    ///
    /// The protocol prefix is checked as soon as its bytes arrive, so a peer speaking something
    /// else is refused without waiting for 68 bytes. An error ends the connection: the
    /// decoder is gone with it.
    pub fn take(self) -> Result<HandshakeStep, WireError> {
        let HandshakeDecoder { mut decoder } = self;
        let unread = &decoder.buf[decoder.pos..];
        check_protocol_prefix(unread)?;
        let Some(bytes) = unread.first_chunk::<HANDSHAKE_LEN>() else {
            return Ok(HandshakeStep::Pending(HandshakeDecoder { decoder }));
        };
        let handshake = Handshake::parse(bytes)?;
        decoder.pos += HANDSHAKE_LEN;
        Ok(HandshakeStep::Done(handshake, decoder))
    }
}

/// A decoded message; a block's data may borrow the bytes it was decoded from.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Any message.
    Message(Message),
    /// A `piece` message whose data borrows the received bytes.
    Block {
        /// The piece.
        piece: u32,
        /// Byte offset in the piece.
        offset: u32,
        /// The block's bytes.
        data: &'a [u8],
    },
}

impl Decoded<'_> {
    /// The owned message (copying a borrowed block).
    pub fn into_message(self) -> Message {
        match self {
            Decoded::Message(m) => m,
            Decoded::Block { piece, offset, data } => Message::Piece { piece, offset, data: data.to_vec() },
        }
    }
}

/// Decodes or skips one frame at the front of `unread`: the frame, the bytes it used and the
/// bytes of a skipped frame still to come; `None` if more bytes are needed.
fn decode_one(
    unread: &[u8],
    limits: &Limits,
    piece_count: Option<u32>,
) -> Result<Option<(Frame, usize, usize)>, WireError> {
    let Some(prefix) = unread.first_chunk::<PREFIX_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix);
    // Checked before anything is buffered or allocated for the frame.
    if len > limits.max_message_len {
        return Err(WireError::MessageTooLong { len, max: limits.max_message_len });
    }
    if len == 0 {
        return Ok(Some((Frame::Message(Message::KeepAlive), PREFIX_LEN, 0)));
    }
    let Some(&msg_id) = unread.get(PREFIX_LEN) else {
        return Ok(None);
    };
    // Fits: len <= max_message_len, a u32, and usize is at least 32 bits on our targets.
    let frame_len = PREFIX_LEN + len as usize;
    match check_header(msg_id, len, limits, piece_count)? {
        FrameKind::Unknown => {
            let have = frame_len.min(unread.len());
            Ok(Some((Frame::Skipped, have, frame_len - have)))
        }
        FrameKind::Known => {
            let Some(frame) = unread.get(..frame_len) else {
                return Ok(None);
            };
            let msg = parse_body(msg_id, &frame[PREFIX_LEN + 1..], limits, piece_count)?;
            Ok(Some((Frame::Message(msg), frame_len, 0)))
        }
    }
}

/// What one step of the decoder produced.
enum Frame {
    Message(Message),
    Skipped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BlockRef, InfoHash, PeerId};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn block(piece: u32) -> BlockRef {
        BlockRef { piece, offset: 16384, len: 16384 }
    }

    /// One of every message, with payloads that exercise the length fields.
    fn every_message() -> Vec<Message> {
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have { piece: 5 },
            Message::Bitfield(vec![0xFF, 0x80]),
            Message::Request(block(1)),
            Message::Piece { piece: 2, offset: 32768, data: (0..=255u8).cycle().take(3000).collect() },
            Message::Piece { piece: 0, offset: 0, data: Vec::new() },
            Message::Cancel(block(3)),
            Message::Port(6881),
            Message::Suggest { piece: 4 },
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject(block(6)),
            Message::AllowedFast { piece: 8 },
            Message::Extended { id: 0, payload: b"d1:md11:ut_metadatai1eee".to_vec() },
            Message::Extended { id: 1, payload: Vec::new() },
            Message::KeepAlive,
        ]
    }

    fn encode_all(msgs: &[Message]) -> Vec<u8> {
        let mut out = Vec::new();
        for msg in msgs {
            msg.encode(&mut out);
        }
        out
    }

    fn drain(decoder: &mut Decoder, into: &mut Vec<Message>) {
        while let Some(msg) = decoder.next_message().unwrap() {
            into.push(msg);
        }
    }

    /// Feeds `stream` in the given chunk sizes, decoding after each chunk.
    fn decode_chunked(stream: &[u8], chunk_sizes: impl Iterator<Item = usize>) -> Vec<Message> {
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_piece_count(10);
        let mut out = Vec::new();
        let mut rest = stream;
        for size in chunk_sizes {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            decoder.feed(chunk);
            drain(&mut decoder, &mut out);
            rest = tail;
        }
        assert!(rest.is_empty(), "chunk sizes ran out");
        assert_eq!(decoder.buffered(), 0);
        out
    }

    /// Decodes one complete frame the way the engine would.
    fn decode_one(frame: &[u8], piece_count: Option<u32>) -> Result<Option<Message>, WireError> {
        let mut decoder = Decoder::new(Limits::default());
        if let Some(n) = piece_count {
            decoder.set_piece_count(n);
        }
        decoder.feed(frame);
        decoder.next_message()
    }

    fn frame(id: u8, body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        out.push(id);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn every_message_round_trips() {
        for msg in every_message() {
            let mut bytes = Vec::new();
            msg.encode(&mut bytes);
            assert_eq!(decode_one(&bytes, Some(10)), Ok(Some(msg.clone())), "{msg:?}");
        }
    }

    #[test]
    fn any_split_of_the_stream_gives_the_same_messages() {
        let msgs = every_message();
        let stream = encode_all(&msgs);
        assert_eq!(decode_chunked(&stream, std::iter::once(stream.len())), msgs);
        assert_eq!(decode_chunked(&stream, std::iter::repeat(1)), msgs);
        for cut in 0..=stream.len() {
            assert_eq!(decode_chunked(&stream, [cut, stream.len()].into_iter()), msgs, "cut {cut}");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let sizes = std::iter::from_fn(|| Some(rng.random_range(1..300)));
            assert_eq!(decode_chunked(&stream, sizes), msgs);
        }
    }

    /// Decodes `stream` in chunks through `next_message_from`.
    fn decode_from_chunks(stream: &[u8], chunk_sizes: impl Iterator<Item = usize>) -> Vec<Message> {
        let mut decoder = Decoder::new(Limits::default());
        let mut out = Vec::new();
        let mut rest = stream;
        for size in chunk_sizes {
            if rest.is_empty() {
                break;
            }
            let (mut chunk, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            while let Some(msg) = decoder.next_message_from(&mut chunk).unwrap() {
                out.push(msg);
            }
            assert!(chunk.is_empty(), "the input is consumed or kept");
        }
        out
    }

    #[test]
    fn decoding_from_the_input_equals_decoding_from_the_buffer() {
        let mut msgs = every_message();
        msgs.push(Message::KeepAlive);
        let mut stream = encode_all(&msgs);
        // An unknown message id (skipped) in the middle, then everything again.
        stream.extend_from_slice(&[0, 0, 0, 5, 99, 1, 2, 3, 4]);
        stream.extend_from_slice(&encode_all(&msgs));
        let expected: Vec<Message> = msgs.iter().chain(msgs.iter()).cloned().collect();
        assert_eq!(decode_from_chunks(&stream, std::iter::once(stream.len())), expected);
        for size in [1, 2, 3, 5, 7, 13, 64, 1000] {
            assert_eq!(decode_from_chunks(&stream, std::iter::repeat(size)), expected, "chunks of {size}");
        }
        let mut rng = 12345u64;
        let random = std::iter::from_fn(move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            Some((rng % 300) as usize + 1)
        });
        assert_eq!(decode_from_chunks(&stream, random), expected);
    }

    #[test]
    fn blocks_decoded_from_the_input_borrow_it() {
        let msgs = vec![
            Message::Piece { piece: 3, offset: 16384, data: vec![7; 100] },
            Message::Have { piece: 2 },
            Message::Piece { piece: 4, offset: 0, data: vec![9; 10] },
        ];
        let stream = encode_all(&msgs);
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_piece_count(10);
        let mut input = &stream[..];
        let first = decoder.next_from(&mut input).unwrap().unwrap();
        assert_eq!(first, Decoded::Block { piece: 3, offset: 16384, data: &[7; 100][..] });
        let mut rest = Vec::new();
        while let Some(d) = decoder.next_from(&mut input).unwrap() {
            rest.push(d.into_message());
        }
        assert_eq!(rest, msgs[1..]);
        // A block index past the piece count is refused on this path too.
        let mut keepalive_then_seven = vec![0, 0, 0, 0, 7];
        assert_eq!(
            Decoder::new(Limits::default()).next_from(&mut &keepalive_then_seven[..]),
            Ok(Some(Decoded::Message(Message::KeepAlive)))
        );
        keepalive_then_seven.clear();
        let mut bad = Vec::new();
        Message::Piece { piece: 10, offset: 0, data: vec![1] }.encode(&mut bad);
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_piece_count(10);
        assert!(decoder.next_from(&mut &bad[..]).is_err());
    }

    #[test]
    fn decoding_from_the_input_keeps_errors_sticky() {
        let mut decoder = Decoder::new(Limits::default());
        let mut bad: &[u8] = &[0xff, 0xff, 0xff, 0xff, 7];
        assert!(decoder.next_message_from(&mut bad).is_err());
        let mut good: &[u8] = &[0, 0, 0, 0];
        assert!(decoder.next_message_from(&mut good).is_err(), "a failed decoder stays failed");
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut bytes = Vec::new();
        Message::Have { piece: 1 }.encode(&mut bytes);
        let mut decoder = Decoder::new(Limits::default());
        decoder.feed(&bytes[..8]);
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(decoder.buffered(), 8);
        decoder.feed(&bytes[8..]);
        assert_eq!(decoder.next_message(), Ok(Some(Message::Have { piece: 1 })));
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn fixed_size_messages_must_have_their_exact_length() {
        let cases: [(u8, usize); 13] = [
            (0, 0),
            (1, 0),
            (2, 0),
            (3, 0),
            (4, 4),
            (6, 12),
            (8, 12),
            (9, 2),
            (13, 4),
            (14, 0),
            (15, 0),
            (16, 12),
            (17, 4),
        ];
        for (id, body_len) in cases {
            for wrong in [body_len + 1, body_len.wrapping_sub(1)] {
                if wrong > 100 {
                    continue; // no shorter body for id-only messages
                }
                let got = decode_one(&frame(id, &vec![0; wrong]), None);
                let len = wrong as u32 + 1;
                assert_eq!(got, Err(WireError::BadLength { id, len }), "id {id} body {wrong}");
            }
        }
        assert_eq!(decode_one(&frame(7, &[0; 7]), None), Err(WireError::BadLength { id: 7, len: 8 }));
        assert_eq!(decode_one(&frame(20, &[]), None), Err(WireError::BadLength { id: 20, len: 1 }));
    }

    #[test]
    fn bad_lengths_are_refused_from_the_header_alone() {
        // A `have` claiming 200 KiB is refused before the body arrives.
        let mut decoder = Decoder::new(Limits::default());
        decoder.feed(&(200 * 1024u32).to_be_bytes());
        assert_eq!(decoder.next_message(), Ok(None));
        decoder.feed(&[4]);
        assert_eq!(decoder.next_message(), Err(WireError::BadLength { id: 4, len: 200 * 1024 }));
    }

    #[test]
    fn a_4_gib_length_prefix_is_refused_at_once() {
        let mut decoder = Decoder::new(Limits::default());
        decoder.feed(&[0xFF, 0xFF, 0xFF, 0xFF]);
        let err = WireError::MessageTooLong { len: u32::MAX, max: 256 * 1024 };
        assert_eq!(decoder.next_message(), Err(err.clone()));
        assert!(decoder.buf.capacity() < 1024, "nothing was reserved for the frame");
        // The error sticks: the stream cannot be resynchronised.
        decoder.feed(&[0, 0, 0, 0]);
        assert_eq!(decoder.next_message(), Err(err));
    }

    #[test]
    fn frames_over_the_limit_are_refused() {
        let limits = Limits { max_message_len: 1000, max_block_len: 500 };
        let mut decoder = Decoder::new(limits);
        decoder.feed(&1001u32.to_be_bytes());
        assert_eq!(decoder.next_message(), Err(WireError::MessageTooLong { len: 1001, max: 1000 }));
        // Unknown ids are skipped, but their length is still bounded.
        let mut decoder = Decoder::new(limits);
        decoder.feed(&frame(99, &[0; 1000]));
        assert_eq!(decoder.next_message(), Err(WireError::MessageTooLong { len: 1001, max: 1000 }));
    }

    #[test]
    fn oversized_blocks_are_refused() {
        let limits = Limits { max_message_len: 1 << 20, max_block_len: 128 * 1024 };
        let mut decoder = Decoder::new(limits);
        decoder.feed(&(9 + 128 * 1024 + 1u32).to_be_bytes());
        decoder.feed(&[7]);
        let too_long = WireError::BlockTooLong { len: 128 * 1024 + 1, max: 128 * 1024 };
        assert_eq!(decoder.next_message(), Err(too_long.clone()));

        let mut request = Vec::new();
        Message::Request(BlockRef { piece: 0, offset: 0, len: 128 * 1024 + 1 }).encode(&mut request);
        assert_eq!(decode_one(&request, None), Err(too_long));
        let mut request = Vec::new();
        Message::Request(BlockRef { piece: 0, offset: 0, len: 128 * 1024 }).encode(&mut request);
        assert!(matches!(decode_one(&request, None), Ok(Some(Message::Request(_)))));
    }

    #[test]
    fn piece_indices_are_checked_once_the_count_is_known() {
        let out_of_range = [
            Message::Have { piece: 10 },
            Message::Request(block(10)),
            Message::Piece { piece: 10, offset: 0, data: vec![1] },
            Message::Cancel(block(10)),
            Message::Suggest { piece: 10 },
            Message::Reject(block(10)),
            Message::AllowedFast { piece: u32::MAX },
        ];
        for msg in out_of_range {
            let mut bytes = Vec::new();
            msg.encode(&mut bytes);
            let id = bytes[4];
            let piece = u32::from_be_bytes(bytes[5..9].try_into().unwrap());
            assert_eq!(
                decode_one(&bytes, Some(10)),
                Err(WireError::PieceIndexOutOfRange { id, piece, piece_count: 10 })
            );
            assert_eq!(decode_one(&bytes, None), Ok(Some(msg)), "no check before the count is known");
        }
    }

    #[test]
    fn bitfield_length_must_match_the_piece_count() {
        let short = frame(5, &[0xFF]);
        let long = frame(5, &[0xFF, 0xFF, 0]);
        let exact_with_spare_bits = frame(5, &[0xFF, 0xFF]);
        assert_eq!(decode_one(&short, Some(10)), Err(WireError::BadBitfieldLength { len: 1, expected: 2 }));
        assert_eq!(decode_one(&long, Some(10)), Err(WireError::BadBitfieldLength { len: 3, expected: 2 }));
        assert_eq!(decode_one(&exact_with_spare_bits, Some(10)), Ok(Some(Message::Bitfield(vec![0xFF, 0xFF]))));
        assert_eq!(decode_one(&long, None), Ok(Some(Message::Bitfield(vec![0xFF, 0xFF, 0]))));
        // A wrong-length bitfield is refused from its header, before the body arrives.
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_piece_count(10);
        decoder.feed(&long[..5]);
        assert_eq!(decoder.next_message(), Err(WireError::BadBitfieldLength { len: 3, expected: 2 }));
    }

    #[test]
    fn unknown_ids_are_skipped_even_across_feeds() {
        let mut stream = frame(99, &[0xAA; 5000]);
        Message::Have { piece: 3 }.encode(&mut stream);
        stream.extend(frame(21, &[]));
        Message::Choke.encode(&mut stream);
        let expected = vec![Message::Have { piece: 3 }, Message::Choke];
        assert_eq!(decode_chunked(&stream, std::iter::once(stream.len())), expected);
        assert_eq!(decode_chunked(&stream, std::iter::repeat(7)), expected);

        // The skipped frame is not held in the buffer while its bytes trickle in.
        let mut decoder = Decoder::new(Limits::default());
        for chunk in stream[..4000].chunks(1000) {
            decoder.feed(chunk);
            assert_eq!(decoder.next_message(), Ok(None));
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn consumed_bytes_are_compacted_away() {
        let mut one = Vec::new();
        Message::Have { piece: 1 }.encode(&mut one);
        let mut decoder = Decoder::new(Limits::default());
        for _ in 0..10_000 {
            decoder.feed(&one[..3]);
            decoder.feed(&one[3..]);
            decoder.feed(&one[..2]); // leave a partial frame behind every time
            assert_eq!(decoder.next_message(), Ok(Some(Message::Have { piece: 1 })));
            assert_eq!(decoder.next_message(), Ok(None));
            decoder.feed(&one[2..]);
            assert_eq!(decoder.next_message(), Ok(Some(Message::Have { piece: 1 })));
        }
        assert!(decoder.buf.len() < 64, "buffer grew to {}", decoder.buf.len());
    }

    /// Feeds `bytes` and takes the handshake; the decoder comes back while it is incomplete.
    fn feed_and_take(mut d: HandshakeDecoder, bytes: &[u8]) -> Result<HandshakeStep, WireError> {
        d.feed(bytes);
        d.take()
    }

    #[test]
    fn handshake_then_messages_from_the_first_byte() {
        let ours = Handshake::new(InfoHash([3; 20]), PeerId([4; 20]));
        let mut stream = Vec::new();
        ours.encode(&mut stream);
        Message::Bitfield(vec![0x80]).encode(&mut stream);
        Message::Unchoke.encode(&mut stream);

        for split in 0..stream.len() {
            let (handshake, mut decoder) =
                match feed_and_take(HandshakeDecoder::new(Limits::default()), &stream[..split]).unwrap() {
                    HandshakeStep::Pending(d) => match feed_and_take(d, &stream[split..]).unwrap() {
                        HandshakeStep::Pending(_) => panic!("the whole handshake is in"),
                        HandshakeStep::Done(h, d) => (h, d),
                    },
                    HandshakeStep::Done(h, mut d) => {
                        assert!(split >= HANDSHAKE_LEN);
                        d.feed(&stream[split..]);
                        (h, d)
                    }
                };
            assert_eq!(handshake, ours);
            let mut msgs = Vec::new();
            drain(&mut decoder, &mut msgs);
            assert_eq!(msgs, [Message::Bitfield(vec![0x80]), Message::Unchoke], "split {split}");
        }
    }

    #[test]
    fn a_foreign_protocol_is_refused_from_its_first_bytes() {
        let fresh = || HandshakeDecoder::new(Limits::default());
        assert!(matches!(feed_and_take(fresh(), b"GET / HTTP/1.1\r\n"), Err(WireError::BadHandshake(_))));
        let Ok(HandshakeStep::Pending(d)) = feed_and_take(fresh(), b"\x13BitTorrent proto") else {
            panic!("a correct prefix waits for more")
        };
        assert_eq!(d.buffered(), 17);
        assert!(matches!(feed_and_take(d, b"kol"), Err(WireError::BadHandshake(_))));
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5EED);
        let valid = encode_all(&every_message());
        for round in 0..4000 {
            let len = rng.random_range(0..400);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Half the rounds: valid frames with a few bytes flipped, which reach deeper paths
            // than pure noise (whose first length prefix is nearly always too long).
            if round % 2 == 0 {
                buf = valid.clone();
                for _ in 0..rng.random_range(1..6) {
                    let at = rng.random_range(0..buf.len());
                    buf[at] = rng.random();
                }
            }
            let limits = Limits { max_message_len: rng.random_range(0..5000), max_block_len: 2000 };
            // A third of the rounds start with a handshake decoder.
            let mut handshake = (round % 3 == 0).then(|| HandshakeDecoder::new(limits));
            let piece_count = rng.random::<bool>().then(|| rng.random_range(0..20));
            let mut decoder = Decoder::new(limits);
            let count = |d: &mut Decoder| {
                if let Some(n) = piece_count {
                    d.set_piece_count(n);
                }
            };
            count(&mut decoder);
            let mut rest = buf.as_slice();
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(rng.random_range(1..=rest.len()));
                rest = tail;
                if let Some(mut h) = handshake.take() {
                    h.feed(chunk);
                    assert!(h.buffered() <= buf.len());
                    match h.take() {
                        Ok(HandshakeStep::Pending(h)) => handshake = Some(h),
                        Ok(HandshakeStep::Done(_, mut d)) => {
                            count(&mut d);
                            decoder = d;
                        }
                        Err(_) => break,
                    }
                } else {
                    decoder.feed(chunk);
                }
                while let Ok(Some(_)) = decoder.next_message() {}
                assert!(decoder.buffered() <= buf.len());
            }
        }
    }
}
