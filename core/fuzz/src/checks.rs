//! One check per fuzz target: decode the input with a `shoal-core` decoder, which must not
//! panic, and assert the properties a successful decode promises.
//!
//! This file is compiled twice: as `shoal_core_fuzz::checks` for the fuzz targets, and, through
//! `#[path]`, as a module of `core/tests/fuzz_corpus.rs`, which replays the committed corpora.
//! It may only use `std` and crates `shoal-core` itself depends on.

use std::path::Component;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use shoal_core::bencode::{self, BencodeError};
use shoal_core::magnet::{Magnet, MAX_SELECT_ONLY};
use shoal_core::mse::{self, Levels, MseHandshake, MseStep, Secrets, Selected, MAX_INITIAL_PAYLOAD};
use shoal_core::portmap::pcp::{self, Answer as PcpAnswer, MapAnswer};
use shoal_core::portmap::{PortMapConfig, PortMapEvent, PortMapOutput, PortMapper, Protocol};
use shoal_core::socks::{self, Command, Credentials, SocksError, Status, Target, MAX_REPLY};
use shoal_core::tracker::udp::{Request, Response, UdpConfig, UdpExchange, UdpOutcome};
use shoal_core::tracker::{
    parse_announce, parse_scrape, AnnounceEvent, AnnounceParams, AnnounceResponse, MAX_INTERVAL,
    MAX_PEERS_PER_RESPONSE, MIN_INTERVAL, MIN_MIN_INTERVAL,
};
use shoal_core::utp::{looks_like_utp, Packet, PacketType, UtpConfig, UtpEvent, UtpSocket};
use shoal_core::wire::{
    Decoder, ExtendedHandshake, Handshake, HandshakeDecoder, HandshakeStep, HolepunchMessage, Limits, Message,
    MetadataMessage, PexMessage, WireError, HANDSHAKE_LEN, MAX_HOLEPUNCH_LEN,
};
use shoal_core::{FileEntry, Info, Metainfo};
use shoal_core::{InfoHash, Instant, PeerId};

/// A target's check: panics if the input reveals a bug.
pub type Check = fn(&[u8]);

/// Every target, by name, for the corpus replay.
pub const TARGETS: &[(&str, Check)] = &[
    ("wire_message", wire_message),
    ("wire_stream", wire_stream),
    ("bencode", bencode),
    ("metainfo", metainfo),
    ("magnet", magnet),
    ("tracker_http", tracker_http),
    ("tracker_udp", tracker_udp),
    ("udp_exchange", udp_exchange),
    ("extended_handshake", extended_handshake),
    ("ut_metadata", ut_metadata),
    ("ut_pex", ut_pex),
    ("ut_holepunch", ut_holepunch),
    ("mse_responder", mse_responder),
    ("mse_initiator", mse_initiator),
    ("utp_packet", utp_packet),
    ("utp_socket", utp_socket),
    ("socks_reply", socks_reply),
    ("pcp_answer", pcp_answer),
];

/// The info-hash of the captured opentracker scrape in `tracker/http.rs`.
const SCRAPE_HASH: [u8; 20] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45,
    0x67,
];

// ---------------------------------------------------------------------------------------------
// Wire protocol
// ---------------------------------------------------------------------------------------------

/// How a decoder is set up, chosen by the fuzzer.
#[derive(Clone, Copy, Debug)]
struct WireConfig {
    limits: Limits,
    piece_count: Option<u32>,
    expect_handshake: bool,
}

impl WireConfig {
    /// Reads the configuration from the front of `data`: one flag byte, then (if bit 1 is set)
    /// a 2-byte little-endian piece count.
    ///
    /// Flags: bit 0 small limits (64-byte frames, 32-byte blocks), bit 1 piece count known,
    /// bit 7 the stream starts with the 68-byte handshake.
    fn take(data: &[u8]) -> (WireConfig, &[u8]) {
        let Some((&flags, mut rest)) = data.split_first() else {
            return (WireConfig { limits: Limits::default(), piece_count: None, expect_handshake: false }, data);
        };
        let limits = if flags & 1 != 0 { Limits { max_message_len: 64, max_block_len: 32 } } else { Limits::default() };
        let piece_count = if flags & 2 != 0 {
            let n = match rest {
                [a, b, tail @ ..] => {
                    rest = tail;
                    u32::from(u16::from_le_bytes([*a, *b]))
                }
                _ => 0,
            };
            Some(n)
        } else {
            None
        };
        (WireConfig { limits, piece_count, expect_handshake: flags & 0x80 != 0 }, rest)
    }

    /// The message decoder, with the piece count applied.
    fn decoder(&self) -> Decoder {
        self.counted(Decoder::new(self.limits))
    }

    /// Applies the piece count to `d`.
    fn counted(&self, mut d: Decoder) -> Decoder {
        if let Some(n) = self.piece_count {
            d.set_piece_count(n);
        }
        d
    }
}

/// A stream's decoders: the handshake's until the handshake is taken (if one is expected),
/// then the messages'.
struct StreamDecoder {
    handshake: Option<HandshakeDecoder>,
    messages: Decoder,
}

impl StreamDecoder {
    fn new(cfg: &WireConfig) -> Self {
        StreamDecoder {
            handshake: cfg.expect_handshake.then(|| HandshakeDecoder::new(cfg.limits)),
            messages: cfg.decoder(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        match &mut self.handshake {
            Some(h) => h.feed(chunk),
            None => self.messages.feed(chunk),
        }
    }

    /// Takes the handshake if one is due; true once messages may be read (false while the
    /// handshake is incomplete, or after it failed: `out.error`).
    fn take_handshake(&mut self, cfg: &WireConfig, out: &mut WireOutcome) -> bool {
        let Some(h) = self.handshake.take() else { return true };
        match h.take() {
            Ok(HandshakeStep::Pending(h)) => {
                self.handshake = Some(h);
                false
            }
            Ok(HandshakeStep::Done(hs, d)) => {
                out.handshake = Some(hs);
                self.messages = cfg.counted(d);
                true
            }
            Err(e) => {
                out.error = Some(e);
                false
            }
        }
    }

    fn buffered(&self) -> usize {
        self.handshake.as_ref().map_or(self.messages.buffered(), HandshakeDecoder::buffered)
    }
}

/// Everything a decoder made of a stream.
#[derive(Debug, PartialEq, Eq)]
struct WireOutcome {
    handshake: Option<Handshake>,
    messages: Vec<Message>,
    /// The (sticky) error that ended decoding, if any.
    error: Option<WireError>,
    /// Unread bytes at the end (only compared when there was no error).
    buffered: usize,
}

/// Takes the handshake (if expected) and all complete messages out of the decoder.
fn pump(d: &mut StreamDecoder, cfg: &WireConfig, out: &mut WireOutcome) {
    if out.error.is_some() || !d.take_handshake(cfg, out) {
        return;
    }
    let d = &mut d.messages;
    loop {
        match d.next_message() {
            Ok(Some(m)) => {
                check_message(&m, cfg);
                out.messages.push(m);
            }
            Ok(None) => return,
            Err(e) => {
                // Errors are sticky: the connection is to be closed, not resynchronised.
                assert_eq!(d.next_message(), Err(e.clone()), "error is not sticky");
                out.error = Some(e);
                return;
            }
        }
    }
}

/// Feeds `stream` in chunks of the given sizes (cycled; 0 feeds an empty slice), decoding after
/// every chunk.
fn decode_chunked(cfg: &WireConfig, stream: &[u8], sizes: &[usize]) -> WireOutcome {
    assert!(sizes.iter().any(|&s| s > 0), "chunk sizes must make progress");
    let mut d = StreamDecoder::new(cfg);
    let mut out = WireOutcome { handshake: None, messages: Vec::new(), error: None, buffered: 0 };
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    // Feed at least once, so an empty stream still runs the decoder.
    loop {
        let size = *sizes.next().expect("cycle of a non-empty list");
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        d.feed(chunk);
        pump(&mut d, cfg, &mut out);
        rest = tail;
        if rest.is_empty() || out.error.is_some() {
            break;
        }
    }
    out.buffered = if out.error.is_some() { 0 } else { d.buffered() };
    out
}

/// [`decode_chunked`] through `Decoder::next_from`, which decodes whole frames straight from
/// each chunk (borrowing blocks) and buffers only incomplete tails.
fn decode_from_input(cfg: &WireConfig, stream: &[u8], sizes: &[usize]) -> WireOutcome {
    let mut d = StreamDecoder::new(cfg);
    let mut out = WireOutcome { handshake: None, messages: Vec::new(), error: None, buffered: 0 };
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    loop {
        let size = *sizes.next().expect("cycle of a non-empty list");
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        let mut input = chunk;
        if d.handshake.is_some() {
            d.feed(input);
            input = &[];
        }
        if out.error.is_none() && d.take_handshake(cfg, &mut out) {
            loop {
                match d.messages.next_from(&mut input) {
                    Ok(Some(x)) => {
                        let m = x.into_message();
                        check_message(&m, cfg);
                        out.messages.push(m);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        out.error = Some(e);
                        break;
                    }
                }
            }
        }
        if rest.is_empty() || out.error.is_some() {
            break;
        }
    }
    out.buffered = if out.error.is_some() { 0 } else { d.buffered() };
    out
}

/// What a successfully decoded message must satisfy, and that it re-encodes to itself.
fn check_message(m: &Message, cfg: &WireConfig) {
    let in_range = |piece: u32| {
        if let Some(n) = cfg.piece_count {
            assert!(piece < n, "{m:?}: piece out of range of {n}");
        }
    };
    match m {
        Message::Have { piece } | Message::Suggest { piece } | Message::AllowedFast { piece } => in_range(*piece),
        Message::Request(b) => {
            in_range(b.piece);
            assert!(b.len <= cfg.limits.max_block_len, "{m:?}: block too long");
        }
        Message::Cancel(b) | Message::Reject(b) => in_range(b.piece),
        Message::Piece { piece, data, .. } => {
            in_range(*piece);
            assert!(data.len() <= cfg.limits.max_block_len as usize, "piece data too long");
        }
        Message::Bitfield(bits) => {
            if let Some(n) = cfg.piece_count {
                assert_eq!(bits.len() as u64, u64::from(n).div_ceil(8), "bitfield length");
            }
        }
        _ => {}
    }
    let mut bytes = Vec::new();
    m.encode(&mut bytes);
    assert!(bytes.len() <= 4 + cfg.limits.max_message_len as usize, "{m:?} re-encodes over the limit");
    let mut d = cfg.decoder();
    d.feed(&bytes);
    assert_eq!(d.next_message().as_ref(), Ok(&Some(m.clone())), "message does not round-trip");
    assert_eq!(d.buffered(), 0, "re-encoded message left bytes behind");
}

/// Single messages: the whole input (after the configuration) arrives at once.
pub fn wire_message(data: &[u8]) {
    let (cfg, stream) = WireConfig::take(data);
    let out = decode_chunked(&cfg, stream, &[stream.len().max(1)]);
    if let Some(h) = &out.handshake {
        let mut bytes = Vec::new();
        h.encode(&mut bytes);
        assert_eq!(bytes, stream[..HANDSHAKE_LEN], "handshake does not re-encode to its bytes");
    } else if cfg.expect_handshake && out.error.is_none() {
        assert!(stream.len() < HANDSHAKE_LEN, "a complete handshake was not taken");
    }
    if out.error.is_none() {
        assert!(out.buffered <= stream.len());
    }
}

/// A byte stream split at fuzzer-chosen points must decode exactly as the same stream in one
/// piece: same handshake, messages, error and leftover.
///
/// Layout: the [`WireConfig`], then a count byte `k` (mod 32), `k` chunk sizes (one byte each,
/// cycled; 0 feeds an empty chunk), then the stream.
pub fn wire_stream(data: &[u8]) {
    let (cfg, rest) = WireConfig::take(data);
    let (k, rest) = match rest.split_first() {
        Some((&k, rest)) => (usize::from(k % 32), rest),
        None => (0, rest),
    };
    let (sizes, stream) = rest.split_at(k.min(rest.len()));
    let mut sizes: Vec<usize> = sizes.iter().map(|&b| usize::from(b)).collect();
    if !sizes.iter().any(|&s| s > 0) {
        sizes.push(1);
    }
    let whole = decode_chunked(&cfg, stream, &[stream.len().max(1)]);
    let chunked = decode_chunked(&cfg, stream, &sizes);
    assert_eq!(whole, chunked, "chunking changed the outcome (sizes {sizes:?})");
    let direct = decode_from_input(&cfg, stream, &sizes);
    assert_eq!(whole, direct, "decoding from the input changed the outcome (sizes {sizes:?})");
}

/// The BEP 10 extended handshake: anything decoded re-encodes to an equal value.
pub fn extended_handshake(data: &[u8]) {
    if let Ok(h) = ExtendedHandshake::decode(data) {
        let again = ExtendedHandshake::decode(&h.encode());
        assert_eq!(again.as_ref(), Ok(&h), "extended handshake does not round-trip");
    }
}

/// BEP 9 `ut_metadata` messages: anything decoded re-encodes to an equal value.
pub fn ut_metadata(data: &[u8]) {
    if let Ok(m) = MetadataMessage::decode(data) {
        let again = MetadataMessage::decode(&m.encode());
        assert_eq!(again.as_ref(), Ok(&m), "ut_metadata message does not round-trip");
    }
}

/// `ut_pex` (BEP 11): the limits hold, and a decoded message round-trips.
pub fn ut_pex(data: &[u8]) {
    if let Ok(m) = PexMessage::decode(data, 100, 50) {
        assert!(m.added.len() <= 100 && m.dropped.len() <= 50, "ut_pex limits exceeded");
        let again = PexMessage::decode(&m.encode(), usize::MAX, usize::MAX);
        assert_eq!(again.as_ref(), Ok(&m), "ut_pex message does not round-trip");
    }
}

/// `ut_holepunch` (BEP 55): a decoded message encodes within the length bound and round-trips.
pub fn ut_holepunch(data: &[u8]) {
    if let Ok(m) = HolepunchMessage::decode(data) {
        let bytes = m.encode();
        assert!(bytes.len() <= MAX_HOLEPUNCH_LEN, "ut_holepunch message of {} bytes", bytes.len());
        assert_eq!(HolepunchMessage::decode(&bytes), Ok(m), "ut_holepunch message does not round-trip");
    }
}

// ---------------------------------------------------------------------------------------------
// Bencode and metainfo
// ---------------------------------------------------------------------------------------------

/// The structural check: its error offsets are right, depth limits are monotone, and whatever it
/// passes `bt_bencode` decodes without panicking.
pub fn bencode(data: &[u8]) {
    let full = bencode::check(data, bencode::DEFAULT_MAX_DEPTH);
    let shallow = bencode::check(data, 2);
    if shallow.is_ok() {
        assert_eq!(full, Ok(()), "passes at depth 2 but not at the default depth");
    }
    match full {
        Ok(()) => {
            if let Ok(v) = bt_bencode::from_slice::<bt_bencode::Value>(data) {
                // Canonical re-encoding is a fixed point. (Values are not compared: the check
                // tolerates `i-0e` and leading zeros, which decode as a different integer kind.)
                let again = bt_bencode::to_vec(&v).expect("a Value serialises");
                assert_eq!(bencode::check(&again, bencode::DEFAULT_MAX_DEPTH), Ok(()), "re-encoding fails the check");
                let v2: bt_bencode::Value = bt_bencode::from_slice(&again).expect("re-encoding decodes");
                assert_eq!(bt_bencode::to_vec(&v2).expect("a Value serialises"), again, "re-encoding is not stable");
            }
        }
        Err(BencodeError::Empty) => assert!(data.is_empty()),
        Err(BencodeError::Truncated { offset }) => assert_eq!(offset, data.len()),
        Err(BencodeError::Unexpected { offset, byte }) => assert_eq!(data.get(offset), Some(&byte)),
        Err(BencodeError::TrailingData { offset }) => {
            assert!(offset > 0 && offset < data.len());
            assert_eq!(bencode::check(&data[..offset], bencode::DEFAULT_MAX_DEPTH), Ok(()), "prefix is not one value");
        }
        Err(
            BencodeError::BadInteger { offset }
            | BencodeError::BadLength { offset }
            | BencodeError::KeyNotString { offset }
            | BencodeError::TooDeep { offset, .. },
        ) => assert!(offset < data.len()),
    }
}

/// A name that is safe to create under the download directory.
fn check_components(path: &[String], what: &str) {
    assert!(!path.is_empty(), "{what}: empty path");
    let joined: std::path::PathBuf = path.iter().collect();
    let components: Vec<Component<'_>> = joined.components().collect();
    assert!(components.iter().all(|c| matches!(c, Component::Normal(_))), "{what}: unsafe path {joined:?}");
    assert_eq!(components.len(), path.len(), "{what}: a component hides a separator: {path:?}");
    for c in path {
        assert!(!c.contains(['/', '\\', '\0']), "{what}: component {c:?}");
        let b = c.as_bytes();
        assert!(!(b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'), "{what}: drive prefix {c:?}");
    }
}

fn check_file(f: &FileEntry) {
    check_components(&f.path, "file path");
    assert!(f.relative_path().components().all(|c| matches!(c, Component::Normal(_))));
    if let Some(target) = &f.attr.symlink {
        check_components(target, "symlink target");
    }
}

fn check_info(info: &Info) {
    check_components(std::slice::from_ref(&info.name), "name");
    assert!(!info.files.is_empty());
    let mut offset = 0u64;
    for f in &info.files {
        check_file(f);
        assert_eq!(f.offset, offset, "file offsets are not cumulative");
        offset = offset.checked_add(f.length).expect("lengths overflow");
        if info.multi_file {
            assert_eq!(f.path.first(), Some(&info.name), "multi-file paths start with the name");
        }
    }
    assert_eq!(offset, info.total_length);
    assert!(info.total_length > 0 && info.piece_length > 0);
    assert_eq!(info.total_length.div_ceil(u64::from(info.piece_length)), info.pieces.len() as u64);
    let sizes: u64 = (0..info.piece_count()).map(|p| u64::from(info.piece_size(p))).sum();
    assert_eq!(sizes, info.total_length, "piece sizes do not add up");
}

/// `.torrent` files and raw info dictionaries: every path of a parsed torrent is relative with
/// only normal components, and the info dictionary re-parses to the same `Info`.
pub fn metainfo(data: &[u8]) {
    if let Ok(m) = Metainfo::from_bytes(data) {
        check_info(&m.info);
        assert!(data.windows(m.info_bytes.len()).any(|w| w == m.info_bytes), "info bytes are not from the input");
        assert_eq!(Info::from_bytes(&m.info_bytes).as_ref(), Ok(&m.info), "info dictionary re-parses differently");
        for tier in &m.trackers {
            assert!(!tier.is_empty());
        }
    }
    if let Ok(info) = Info::from_bytes(data) {
        check_info(&info);
    }
}

// ---------------------------------------------------------------------------------------------
// Magnet links
// ---------------------------------------------------------------------------------------------

/// Magnet URIs: a parsed link writes out to a URI that parses back to an equal link.
pub fn magnet(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(m) = Magnet::parse(&text) else { return };
    if let Some(so) = &m.select_only {
        assert!(so.len() <= MAX_SELECT_ONLY);
        assert!(so.windows(2).all(|w| w[0] < w[1]), "select_only is not sorted and deduplicated");
    }
    assert!(m.trackers.iter().all(|t| !t.is_empty()));
    let uri = m.to_uri();
    let again = Magnet::parse(&uri);
    assert_eq!(again.as_ref(), Ok(&m), "magnet does not round-trip through {uri:?}");
    assert_eq!(again.map(|a| a.to_uri()).as_deref(), Ok(uri.as_str()), "to_uri is not stable");
}

// ---------------------------------------------------------------------------------------------
// Trackers
// ---------------------------------------------------------------------------------------------

fn check_announce(r: &AnnounceResponse) {
    assert!((MIN_INTERVAL..=MAX_INTERVAL).contains(&r.interval), "interval {:?}", r.interval);
    if let Some(min) = r.min_interval {
        assert!(min >= MIN_MIN_INTERVAL && min <= r.interval.max(MIN_MIN_INTERVAL), "min interval {min:?}");
    }
    assert!(r.peers.len() <= MAX_PEERS_PER_RESPONSE);
    for p in &r.peers {
        assert!(p.port() != 0 && !p.ip().is_unspecified(), "unusable peer {p}");
    }
}

/// HTTP tracker answers (announce and scrape bodies).
pub fn tracker_http(data: &[u8]) {
    if let Ok(r) = parse_announce(data) {
        check_announce(&r);
    }
    let _ = parse_scrape(data, &InfoHash(SCRAPE_HASH));
    let _ = parse_scrape(data, &InfoHash::default());
}

/// UDP tracker datagrams, decoded as answers (both address families) and as requests.
pub fn tracker_udp(data: &[u8]) {
    for ipv6 in [false, true] {
        let Ok(r) = Response::decode(data, ipv6) else { continue };
        assert_eq!(r.transaction_id().to_be_bytes(), data[4..8], "transaction id");
        let bytes = r.encode();
        match &r {
            // The connection id is all that is read; anything after it is ignored.
            Response::Connect { .. } => assert_eq!(bytes, data[..16]),
            Response::Announce { peers, .. } => {
                assert!(peers.iter().all(|p| p.is_ipv6() == ipv6), "peer of the wrong family");
                assert_eq!(bytes, data);
            }
            Response::Scrape { .. } => assert_eq!(bytes, data),
            Response::Error { message, .. } => {
                if data.len() - 8 <= 1024 && std::str::from_utf8(&data[8..]).is_ok() {
                    assert_eq!(bytes, data);
                }
                assert!(message.chars().count() <= 1024, "error text is not cut");
            }
        }
        if !matches!(r, Response::Error { .. }) {
            assert_eq!(Response::decode(&bytes, ipv6).as_ref(), Ok(&r), "answer does not round-trip");
        }
    }
    if let Ok(req) = Request::decode(data) {
        assert_eq!(Request::decode(&req.encode()).as_ref(), Ok(&req), "request does not round-trip");
    }
}

/// One UDP announce or scrape exchange driven by fuzzer-chosen datagrams and timeouts.
///
/// Layout: a flag byte (bit 0 scrape instead of announce, bit 1 IPv6, bit 2 start with a cached
/// connection id, bits 3-4 max attempts - 1), then events: an op byte, and for a datagram a
/// length byte and that many bytes. Op bits 0-1 == 0: advance time to the deadline and time
/// out; otherwise a datagram, with op bit 7 patching in the transaction id and bit 6 the
/// action the exchange waits for (so the fuzzer gets past the id check); op bits 2-5 advance
/// the clock by that many seconds first.
pub fn udp_exchange(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let scrape = flags & 1 != 0;
    let ipv6 = flags & 2 != 0;
    let cfg = UdpConfig { base_timeout: Duration::from_secs(15), max_attempts: u32::from((flags >> 3) & 3) + 1 };
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(flags));
    let info_hash = InfoHash(SCRAPE_HASH);
    let mut now = Instant::from_micros(1_000_000);
    let mut x = if scrape {
        UdpExchange::scrape(info_hash, now, &mut rng, &cfg)
    } else {
        let params = AnnounceParams {
            info_hash,
            peer_id: PeerId(*b"-SH0001-fuzzfuzzfuzz"),
            port: 6881,
            ip: None,
            uploaded: 0,
            downloaded: 0,
            left: 100,
            event: AnnounceEvent::Started,
            num_want: u32::MAX,
            key: 7,
            tracker_id: None,
            ipv6: None,
        };
        UdpExchange::announce(params, now, &mut rng, &cfg)
    };
    if flags & 4 != 0 {
        x = x.with_connection(0x1122_3344_5566_7788, now, now);
    }
    x.set_ipv6(ipv6);

    let mut connect_tid: Option<u32> = None;
    // (transaction id, action) the tracker would answer the last datagram we sent with.
    let mut last_sent: Option<(u32, u32)> = None;
    let mut finished = false;
    let mut check_transmit = |x: &mut UdpExchange, last_sent: &mut Option<(u32, u32)>| {
        if let Some(dgram) = x.poll_transmit() {
            assert!(!x.is_finished(), "finished exchange transmits");
            assert!(x.poll_transmit().is_none(), "datagram handed out twice");
            let req = Request::decode(&dgram).expect("we send valid requests");
            *last_sent = Some(match req {
                Request::Connect { transaction_id } => {
                    assert_eq!(*connect_tid.get_or_insert(transaction_id), transaction_id, "connect tid changed");
                    assert_eq!(x.connection(), None);
                    (transaction_id, 0)
                }
                Request::Announce { connection_id, transaction_id, params } => {
                    assert!(!scrape);
                    assert_eq!(params.info_hash, info_hash);
                    assert_eq!(x.connection().map(|c| c.0), Some(connection_id));
                    (transaction_id, 1)
                }
                Request::Scrape { connection_id, transaction_id, info_hashes } => {
                    assert!(scrape);
                    assert_eq!(info_hashes, vec![info_hash]);
                    assert_eq!(x.connection().map(|c| c.0), Some(connection_id));
                    (transaction_id, 2)
                }
            });
        }
    };
    check_transmit(&mut x, &mut last_sent);

    let mut events = 0;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        events += 1;
        if events > 64 {
            break;
        }
        now += Duration::from_secs(u64::from((op >> 2) & 0xf));
        if op & 3 == 0 {
            if let Some(deadline) = x.poll_timeout() {
                now = now.max(deadline);
            }
            x.handle_timeout(now);
        } else {
            let (len, tail) = match rest.split_first() {
                Some((&len, tail)) => (usize::from(len), tail),
                None => (0, rest),
            };
            let (dgram, tail) = tail.split_at(len.min(tail.len()));
            rest = tail;
            let mut dgram = dgram.to_vec();
            if let Some((tid, action)) = last_sent {
                if op & 0x80 != 0 && dgram.len() >= 8 {
                    dgram[4..8].copy_from_slice(&tid.to_be_bytes());
                }
                if op & 0x40 != 0 && dgram.len() >= 4 {
                    dgram[..4].copy_from_slice(&action.to_be_bytes());
                }
            }
            x.handle_datagram(now, &dgram, &mut rng);
        }
        check_transmit(&mut x, &mut last_sent);
        match x.result() {
            Some(result) => {
                assert!(!finished, "result handed out twice");
                assert!(x.is_finished(), "result before the exchange finished");
                finished = true;
                match result {
                    Ok(UdpOutcome::Announce(r)) => {
                        assert!(!scrape, "announce outcome for a scrape");
                        check_announce(&r);
                    }
                    Ok(UdpOutcome::Scrape(_)) => assert!(scrape, "scrape outcome for an announce"),
                    Err(_) => {}
                }
            }
            None => assert_eq!(x.is_finished(), finished, "finished without a result"),
        }
        if x.is_finished() {
            assert_eq!(x.poll_timeout(), None, "finished exchange keeps a deadline");
            assert_eq!(x.connection(), None);
        } else {
            let deadline = x.poll_timeout().expect("a running exchange has a deadline");
            if op & 3 == 0 {
                assert!(deadline > now, "deadline {deadline:?} not after the timeout at {now:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Message Stream Encryption
// ---------------------------------------------------------------------------------------------

/// The torrent both sides of a fuzzed MSE handshake know.
const MSE_SKEY: InfoHash = InfoHash([0x42; 20]);

/// The levels a fuzzer's byte picks.
fn mse_levels(b: u8) -> Levels {
    [Levels::Plaintext, Levels::Rc4, Levels::Both, Levels::Both][usize::from(b & 3)]
}

/// A side's fixed randomness (a fuzzed handshake is reproducible).
fn mse_secrets(first: u8, pad: usize) -> Secrets {
    Secrets { private_key: std::array::from_fn(|i| first.wrapping_add(i as u8)), pad: vec![0x33; pad] }
}

/// Feeds `data` to `m` in chunks of `chunk`; what it finished with, if it did.
fn mse_feed(mut m: MseHandshake, data: &[u8], chunk: usize) -> Option<mse::Established> {
    for piece in data.chunks(chunk.max(1)) {
        let find = |h: &[u8; 20]| (*h == mse::req2(&MSE_SKEY)).then_some(MSE_SKEY);
        match m.handle(piece, &mut Vec::new(), find) {
            Ok(MseStep::Pending(next)) => m = *next,
            Ok(MseStep::Done(est)) => return Some(est),
            Err(_) => return None,
        }
    }
    None
}

/// What a finished handshake promises: our torrent, a method we allow, bounded payload.
fn mse_check_done(est: &mse::Established, allowed: Levels, input_len: usize) {
    assert_eq!(est.info_hash, MSE_SKEY, "MSE finished for another torrent");
    let bit = match est.selected {
        Selected::Plaintext => 1,
        Selected::Rc4 => 2,
    };
    assert!(allowed.bits() & bit != 0, "MSE selected a method we do not allow");
    assert_eq!(est.send.is_plaintext(), est.selected == Selected::Plaintext);
    assert!(est.payload.len() <= input_len, "MSE payload longer than its input");
}

/// An MSE responder fed the input, either raw (byte 0 even) or, to reach past the hashes a
/// fuzzer cannot guess, as the plaintext of a real initiator's encrypted part: the key stream
/// is known from the bytes a real initiator encrypted.
pub fn mse_responder(data: &[u8]) {
    let [mode, chunk, rest @ ..] = data else { return };
    let allowed = mse_levels(mode >> 1);
    let responder = || MseHandshake::responder(allowed, mse_secrets(21, 5), &mut Vec::new());
    if mode & 1 == 0 {
        if let Some(est) = mse_feed(responder(), rest, usize::from(*chunk)) {
            mse_check_done(&est, allowed, rest.len());
        }
        return;
    }
    // A real exchange up to the initiator's third message, whose encrypted part holds VC,
    // crypto_provide 3, no PadC and MAX_INITIAL_PAYLOAD zeros.
    let mut to_b = Vec::new();
    let mut a = MseHandshake::initiator(MSE_SKEY, Levels::Both, mse_secrets(1, 7), &mut to_b);
    a.add_initial_payload(&[0; MAX_INITIAL_PAYLOAD]);
    let mut to_a = Vec::new();
    let b = MseHandshake::responder(allowed, mse_secrets(21, 5), &mut to_a);
    let Ok(MseStep::Pending(_)) = b.handle(&to_b, &mut to_a, |_| None) else {
        panic!("a responder waits for req1 after the initiator's key")
    };
    let key_and_pad = to_b.len();
    let Ok(MseStep::Pending(_)) = a.handle(&to_a, &mut to_b, |_| None) else {
        panic!("an initiator waits for VC after the responder's key")
    };
    let encrypted = key_and_pad + 40;
    let mut plain = vec![0u8; 16 + MAX_INITIAL_PAYLOAD];
    plain[11] = 3;
    plain[14..16].copy_from_slice(&(MAX_INITIAL_PAYLOAD as u16).to_be_bytes());
    let mut stream = to_b[..encrypted].to_vec();
    for (i, b) in rest.iter().enumerate() {
        let key = plain.get(i).zip(to_b.get(encrypted + i)).map_or(0, |(p, c)| p ^ c);
        stream.push(b ^ key);
    }
    if let Some(est) = mse_feed(responder(), &stream, usize::from(*chunk)) {
        mse_check_done(&est, allowed, stream.len());
    }
}

/// An MSE initiator fed the input, raw (byte 0 even) or as the plaintext of a real
/// responder's reply (VC, crypto_select, len(PadD)) and what follows it.
pub fn mse_initiator(data: &[u8]) {
    let [mode, chunk, rest @ ..] = data else { return };
    let offered = mse_levels(mode >> 1);
    let initiator = || MseHandshake::initiator(MSE_SKEY, offered, mse_secrets(1, 3), &mut Vec::new());
    if mode & 1 == 0 {
        if let Some(est) = mse_feed(initiator(), rest, usize::from(*chunk)) {
            mse_check_done(&est, offered, rest.len());
        }
        return;
    }
    let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
    let a = MseHandshake::initiator(MSE_SKEY, offered, mse_secrets(1, 3), &mut to_b);
    let b = MseHandshake::responder(Levels::Both, mse_secrets(21, 9), &mut to_a);
    let key_and_pad = to_a.len();
    let Ok(MseStep::Pending(_)) = a.handle(&to_a, &mut to_b, |_| None) else {
        panic!("an initiator waits for VC after the responder's key")
    };
    let find = |_: &[u8; 20]| Some(MSE_SKEY);
    let Ok(MseStep::Done(est)) = b.handle(&to_b, &mut to_a, find) else { panic!("the responder finishes") };
    // The reply: VC, crypto_select of what was selected, no PadD.
    let mut plain = [0u8; 14];
    plain[11] = if est.selected == Selected::Rc4 { 2 } else { 1 };
    let mut stream = to_a[..key_and_pad].to_vec();
    for (i, b) in rest.iter().enumerate() {
        let key = plain.get(i).zip(to_a.get(key_and_pad + i)).map_or(0, |(p, c)| p ^ c);
        stream.push(b ^ key);
    }
    if let Some(est) = mse_feed(initiator(), &stream, usize::from(*chunk)) {
        mse_check_done(&est, offered, stream.len());
    }
}

// ---------------------------------------------------------------------------------------------
// uTP
// ---------------------------------------------------------------------------------------------

/// `utp::Packet::decode`: a decoded packet is a uTP datagram by its first byte, and re-encodes
/// to bytes that decode to the same packet (unknown extensions are dropped on the way).
pub fn utp_packet(data: &[u8]) {
    let Ok(p) = Packet::decode(data) else { return };
    assert!(looks_like_utp(data), "decoded but not recognised as uTP");
    assert!(p.sack.as_ref().is_none_or(|s| !s.mask.is_empty() && s.mask.len() <= shoal_core::utp::MAX_SACK_BYTES));
    let again = p.encode();
    assert_eq!(Packet::decode(&again).as_ref(), Ok(&p), "re-encoding changed the packet");
}

/// A `UtpSocket` with small limits, one connection it opened, fed fuzzer-chosen events: one op
/// byte each (op % 7: 0 time passes by the next byte x 10 ms; 1 a raw datagram; 2 a datagram
/// whose connection id is patched to our connection's; 3 the same with the ACK number patched
/// to our SYN's, so it can open the connection; 4 a write; 5 a read; 6 close or abort; the
/// op's high bit picks the second peer address). Datagrams are a length byte and that many
/// bytes. Checked: the limits hold, every datagram we send decodes and respects the payload
/// size, a closed connection stays closed, and a deadline never lies in the past.
pub fn utp_socket(data: &[u8]) {
    let cfg = UtpConfig {
        max_connections: 4,
        max_half_open: 2,
        recv_buffer: 4096,
        send_buffer: 4096,
        ..UtpConfig::default()
    };
    let peers = [std::net::SocketAddr::from(([10, 0, 0, 2], 6881)), std::net::SocketAddr::from(([10, 0, 0, 3], 6881))];
    let mut s = UtpSocket::new(cfg.clone(), 7);
    let mut now = Instant::from_micros(1_000_000);
    let Ok(conn) = s.connect(peers[0], now) else { panic!("the first connect fits the limits") };
    let syn = s.poll_transmit().expect("connect sends a SYN").1;
    let syn = Packet::decode(&syn).expect("our SYN decodes").header;
    assert_eq!(syn.kind, PacketType::Syn);
    let mut closed = false;
    let mut rest = data;
    while let [op, tail @ ..] = rest {
        rest = tail;
        let from = peers[usize::from(op >> 7)];
        match op % 7 {
            0 => {
                let Some((&step, tail)) = rest.split_first() else { break };
                rest = tail;
                now += Duration::from_millis(10 * u64::from(step));
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            1..=3 => {
                let Some((&len, tail)) = rest.split_first() else { break };
                let len = usize::from(len).min(tail.len());
                let mut dgram = tail[..len].to_vec();
                rest = &tail[len..];
                if op % 7 >= 2 && dgram.len() >= 4 {
                    dgram[2..4].copy_from_slice(&syn.conn_id.to_be_bytes());
                }
                if op % 7 == 3 && dgram.len() >= 20 {
                    dgram[18..20].copy_from_slice(&syn.seq_nr.to_be_bytes());
                }
                s.handle_datagram(from, &dgram, now);
            }
            4 => {
                let n = s.write(conn, &[0xab; 3000], now);
                assert!(n <= 3000 && (!closed || n == 0), "write on a closed connection took {n}");
            }
            5 => {
                let bytes = s.read(conn, 5000, now);
                assert!(bytes.len() <= cfg.recv_buffer + cfg.max_payload);
            }
            _ if op & 8 == 0 => s.close(conn, now),
            _ => s.abort(conn, now),
        }
        assert!(s.connections() <= cfg.max_connections && s.half_open() <= cfg.max_half_open);
        while let Some((_, bytes)) = s.poll_transmit() {
            let p = Packet::decode(&bytes).expect("what we send decodes");
            assert!(p.payload.len() <= cfg.max_payload, "oversized payload");
        }
        while let Some(event) = s.poll_event() {
            if let UtpEvent::Closed(c, _) = event {
                assert!(!(closed && c == conn), "closed twice");
                closed |= c == conn;
            }
        }
        closed |= s.stats(conn).is_none();
    }
}

// ---------------------------------------------------------------------------------------------
// SOCKS5
// ---------------------------------------------------------------------------------------------

/// A SOCKS5 client handshake fed a fuzzer-chosen server's answers, and the relay header decoder.
///
/// Layout: a flag byte (bit 0 credentials offered, bit 1 UDP ASSOCIATE, bits 2..5 the chunk
/// size minus one), then the server's bytes, fed in chunks of that size. Asserts: an error is
/// final; nothing beyond one message is buffered; `Done` hands back exactly the bytes after the
/// reply; the whole input as a relayed datagram decodes without panicking, and one from an IP
/// address re-wraps to the same bytes (reserved bytes zeroed).
pub fn socks_reply(data: &[u8]) {
    let unwrapped = socks::udp::unwrap(data);
    if let Ok((from, payload)) = &unwrapped {
        assert!(data.len() - payload.len() <= socks::udp::MAX_HEADER, "header longer than the bound");
        if matches!(from, Target::Ip(_)) {
            // The two reserved bytes are not checked on the way in and written as zeros.
            let expected: Vec<u8> = [0, 0].iter().chain(&data[2..]).copied().collect();
            assert_eq!(socks::udp::wrap(from, payload), Ok(expected), "datagram does not re-wrap");
        }
    }
    // The relayed DHT/uTP datagrams: an IP source or nothing, as `unwrap` says; re-wrapped to
    // the same bytes behind whatever the buffer held.
    match (socks::udp::unwrap_ip(data), &unwrapped) {
        (Ok((from, payload)), Ok((Target::Ip(a), p))) => {
            assert_eq!((&from, payload), (a, *p), "unwrap_ip disagrees with unwrap");
            assert_eq!(data.len() - payload.len(), socks::udp::header_len(&from), "header length");
            let mut out = vec![0xaa];
            socks::udp::wrap_ip(from, payload, &mut out);
            assert_eq!(out[1..3], [0, 0], "reserved bytes");
            assert_eq!(out[3..], data[2..], "datagram does not re-wrap");
        }
        (Err(_), Ok((Target::Domain(..), _)) | Err(_)) => {}
        (got, want) => panic!("unwrap_ip {got:?} but unwrap {want:?}"),
    }
    let Some((&flags, answer)) = data.split_first() else { return };
    let credentials = (flags & 1 != 0).then(|| Credentials::new("user", "password").expect("valid credentials"));
    let command = if flags & 2 != 0 { Command::UdpAssociate } else { Command::Connect };
    let chunk = usize::from((flags >> 2) & 15) + 1;
    let target = Target::Ip(std::net::SocketAddr::from(([127, 0, 0, 1], 6881)));
    let mut h = socks::Handshake::new(command, target, credentials).expect("a valid target");
    let _ = h.transmit();
    let mut fed = 0;
    for piece in answer.chunks(chunk) {
        fed += piece.len();
        match h.handle_bytes(piece) {
            Ok(Status::NeedMore) => {
                let _ = h.transmit();
                assert!(fed <= 3 * MAX_REPLY, "{fed} bytes taken without an answer");
            }
            Ok(Status::Done { rest, .. }) => {
                assert!(answer[..fed].ends_with(&rest), "rest is not the tail of what was read");
                assert_eq!(h.handle_bytes(b"x"), Err(SocksError::Unsolicited));
                return;
            }
            Err(_) => {
                assert_eq!(h.handle_bytes(&[5, 0]), Err(SocksError::Unsolicited), "an error is not final");
                return;
            }
        }
    }
}

/// `pcp_answer`: [`pcp::parse`] on the input, then a PCP-first mapper (TCP and UDP on 6881)
/// fed the input as its gateway's answer, at every stage of a mapping's life.
pub fn pcp_answer(data: &[u8]) {
    match pcp::parse(data) {
        Ok(PcpAnswer::Map(MapAnswer { .. })) => {
            assert!(
                data.len() >= 60 && data.len().is_multiple_of(4) && data.len() <= pcp::MAX_MESSAGE,
                "{}",
                data.len()
            );
            assert_eq!((data[0], data[1]), (pcp::VERSION, 0x81));
        }
        Ok(PcpAnswer::Error { .. }) => assert!(data.len() >= 24 && data[3] != 0),
        Ok(PcpAnswer::UnsupportedVersion) => assert!(data.len() >= 4),
        Err(_) => {}
    }
    let gateway = std::net::Ipv4Addr::new(10, 0, 0, 1);
    let config = PortMapConfig {
        upnp: false,
        gateway: Some(gateway),
        client_ip: Some(std::net::Ipv4Addr::new(10, 0, 0, 2)),
        pcp_nonce: data.get(24..36).and_then(|n| n.try_into().ok()).unwrap_or_default(),
        ..PortMapConfig::default()
    };
    let mut m = PortMapper::new(config, &[(Protocol::Tcp, 6881), (Protocol::Udp, 6881)]);
    let from = std::net::SocketAddr::from((gateway, pcp::PORT));
    let mut now = Instant::ZERO;
    m.start(now);
    for round in 0..3 {
        m.handle_natpmp(from, data, now);
        if round == 1 {
            m.shutdown(now, Duration::from_secs(3));
        }
        now = m.poll_timeout().unwrap_or(now + Duration::from_secs(1));
        m.handle_timeout(now);
        let mut outputs = 0;
        while let Some(o) = m.poll_output() {
            outputs += 1;
            assert!(outputs < 64, "one answer made {outputs} outputs");
            if let PortMapOutput::Event(PortMapEvent::Mapped { external_port, .. }) = o {
                assert_ne!(external_port, 0, "a mapping to port 0");
            }
        }
    }
}
