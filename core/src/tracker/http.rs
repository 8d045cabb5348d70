//! HTTP trackers: announce URL building and response parsing (BEP 3, 23, 7, 48).
//!
//! Parsing is tolerant where real trackers differ (unsorted dictionary keys, trailing bytes
//! after the dictionary, a missing `interval`, unusable entries in a dictionary peer list) and
//! strict where a body cannot be trusted (not bencode, compact lists of the wrong length).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bt_bencode::{ByteString, Value};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::announce::{
    clamp_interval, clamp_min_interval, compact_v4, compact_v6, push_peer, AnnounceEvent, AnnounceParams,
    AnnounceResponse, ScrapeStats, TrackerError, DEFAULT_INTERVAL, MAX_PEERS_PER_RESPONSE,
};
use crate::bencode::{self, BencodeError};
use crate::types::InfoHash;

/// Bytes left alone in a query value: RFC 3986 "unreserved"; everything else is `%XX`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Bencode nested deeper than this is refused before decoding (the decoder recurses).
const MAX_NESTING: usize = 32;

/// Tracker texts (failure reason, warning) are cut to this many bytes before we keep them.
const MAX_TEXT_LEN: usize = 1024;

/// The full announce URL for `base` (which may already carry a query, e.g. a passkey).
///
/// Binary fields are percent-encoded byte by byte; we always ask for compact peers and no peer
/// ids. `numwant` is omitted when it is `u32::MAX` (the tracker's default).
pub fn announce_url(base: &str, p: &AnnounceParams) -> String {
    // A fragment is never sent to a server; the query must go before it.
    let base = base.split_once('#').map_or(base, |(b, _)| b);
    let mut url = String::with_capacity(base.len() + 256);
    url.push_str(base);
    if !base.ends_with('?') && !base.ends_with('&') {
        url.push(if base.contains('?') { '&' } else { '?' });
    }
    let enc = |bytes: &[u8]| percent_encoding::percent_encode(bytes, QUERY_VALUE).to_string();
    url.push_str(&format!(
        "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}",
        enc(&p.info_hash.0),
        enc(&p.peer_id.0),
        p.port,
        p.uploaded,
        p.downloaded,
        p.left
    ));
    if let Some(ip) = p.ip {
        url.push_str(&format!("&ip={ip}"));
    }
    url.push_str(&format!("&key={:08x}&compact=1&no_peer_id=1", p.key));
    let event = match p.event {
        AnnounceEvent::None => None,
        AnnounceEvent::Started => Some("started"),
        AnnounceEvent::Completed => Some("completed"),
        AnnounceEvent::Stopped => Some("stopped"),
    };
    if let Some(event) = event {
        url.push_str("&event=");
        url.push_str(event);
    }
    if p.num_want != u32::MAX {
        url.push_str(&format!("&numwant={}", p.num_want));
    }
    if let Some(id) = &p.tracker_id {
        url.push_str("&trackerid=");
        url.push_str(&utf8_percent_encode(id, QUERY_VALUE).to_string());
    }
    if let Some(ip) = p.ipv6 {
        // BEP 7: the tracker hands this address to IPv6 peers whatever family the GET used.
        url.push_str("&ipv6=");
        url.push_str(&enc(ip.to_string().as_bytes()));
    }
    url
}

/// The scrape URL for an announce URL (BEP 48), or `None` if the tracker cannot scrape.
///
/// The convention: the last path segment must begin with `announce`, which becomes `scrape`
/// (`/announce.php?pk=1` becomes `/scrape.php?pk=1`).
pub fn scrape_url(announce: &str) -> Option<String> {
    let (before_query, query) = match announce.find('?') {
        Some(i) => announce.split_at(i),
        None => (announce, ""),
    };
    let authority_start = before_query.find("://")? + 3;
    let last_slash = before_query.rfind('/')?;
    if last_slash < authority_start {
        return None;
    }
    let (head, segment) = before_query.split_at(last_slash + 1);
    let rest = segment.strip_prefix("announce")?;
    Some(format!("{head}scrape{rest}{query}"))
}

/// The full scrape request for one torrent, or `None` if the tracker cannot scrape.
pub fn scrape_request_url(announce: &str, info_hash: &InfoHash) -> Option<String> {
    let base = scrape_url(announce)?;
    let base = base.split_once('#').map_or(base.as_str(), |(b, _)| b).to_owned();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}info_hash={}", percent_encoding::percent_encode(&info_hash.0, QUERY_VALUE)))
}

/// Parses the body of an HTTP announce answer.
pub fn parse_announce(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    let dict = decode_dict(body)?;
    if let Some(reason) = dict.get(b"failure reason".as_slice()) {
        let reason = reason.as_byte_str().map_or_else(|| "(unreadable reason)".to_owned(), |s| text(s));
        return Err(TrackerError::Failure(reason));
    }

    let interval = match dict.get(b"interval".as_slice()) {
        Some(v) => secs(v).ok_or(TrackerError::Malformed("interval is not an integer"))?,
        None => DEFAULT_INTERVAL,
    };
    let interval = clamp_interval(interval);
    let min_interval = dict.get(b"min interval".as_slice()).and_then(secs).map(|m| clamp_min_interval(m, interval));

    let mut peers = Vec::new();
    match dict.get(b"peers".as_slice()) {
        None => {}
        Some(Value::ByteStr(compact)) => compact_v4(compact)?.for_each(|a| push_peer(&mut peers, a)),
        Some(Value::List(list)) => decode_peer_dicts(list, &mut peers),
        Some(_) => return Err(TrackerError::Malformed("peers is neither a string nor a list")),
    }
    match dict.get(b"peers6".as_slice()) {
        None => {}
        Some(Value::ByteStr(compact)) => compact_v6(compact)?.for_each(|a| push_peer(&mut peers, a)),
        Some(_) => return Err(TrackerError::Malformed("peers6 is not a string")),
    }

    Ok(AnnounceResponse {
        interval,
        min_interval,
        peers,
        complete: dict.get(b"complete".as_slice()).and_then(count),
        incomplete: dict.get(b"incomplete".as_slice()).and_then(count),
        tracker_id: dict.get(b"tracker id".as_slice()).and_then(Value::as_byte_str).map(|s| text(s)),
        warning: dict.get(b"warning message".as_slice()).and_then(Value::as_byte_str).map(|s| text(s)),
    })
}

/// Parses the body of an HTTP scrape answer and picks out `info_hash`'s figures.
pub fn parse_scrape(body: &[u8], info_hash: &InfoHash) -> Result<ScrapeStats, TrackerError> {
    let entry = scrape_entry(body, info_hash)?;
    let stats = entry.as_dict().ok_or(TrackerError::Malformed("scrape answer does not mention the torrent"))?;
    let field = |key: &[u8]| stats.get(key).and_then(count).unwrap_or(0);
    Ok(ScrapeStats { complete: field(b"complete"), incomplete: field(b"incomplete"), downloaded: field(b"downloaded") })
}

/// The value an HTTP scrape answer gives for `info_hash`: the answer's `failure reason` is an
/// error, and so is a missing `files` dictionary or entry. Callers judge the entry themselves.
pub(crate) fn scrape_entry(body: &[u8], info_hash: &InfoHash) -> Result<Value, TrackerError> {
    let mut dict = decode_dict(body)?;
    if let Some(reason) = dict.get(b"failure reason".as_slice()) {
        let reason = reason.as_byte_str().map_or_else(|| "(unreadable reason)".to_owned(), |s| text(s));
        return Err(TrackerError::Failure(reason));
    }
    let Some(Value::Dict(mut files)) = dict.remove(b"files".as_slice()) else {
        return Err(TrackerError::Malformed("scrape answer has no files dictionary"));
    };
    files.remove(info_hash.0.as_slice()).ok_or(TrackerError::Malformed("scrape answer does not mention the torrent"))
}

/// Decodes `body` as a bencoded dictionary, ignoring any bytes after it.
///
/// The body first passes [`bencode::check`], nested at most [`MAX_NESTING`] deep: `bt_bencode`
/// recurses without limit and overflows its offset arithmetic on a byte-string length near
/// `usize::MAX`, so it only ever sees the one well-formed value at the front of the body.
pub(crate) fn decode_dict(body: &[u8]) -> Result<BTreeMap<ByteString, Value>, TrackerError> {
    if body.first() != Some(&b'd') {
        return Err(TrackerError::Malformed("answer is not a bencoded dictionary"));
    }
    let value = match bencode::check(body, MAX_NESTING) {
        Ok(()) => body,
        // Trackers may append a newline or other junk after the dictionary.
        Err(BencodeError::TrailingData { offset }) => &body[..offset],
        Err(BencodeError::TooDeep { .. }) => return Err(TrackerError::Malformed("bencode nested too deeply")),
        Err(e) => return Err(TrackerError::Bencode(e.to_string())),
    };
    let mut de = bt_bencode::Deserializer::from_slice(value);
    match Value::deserialize(&mut de) {
        Ok(Value::Dict(dict)) => Ok(dict),
        Ok(_) => Err(TrackerError::Malformed("answer is not a bencoded dictionary")),
        Err(e) => Err(TrackerError::Bencode(e.to_string())),
    }
}

/// Reads peers from a BEP 3 list of `{ip, port[, peer id]}` dictionaries.
///
/// Entries we cannot use (a host name instead of an address, a bad port) are skipped rather
/// than failing the whole answer.
fn decode_peer_dicts(list: &[Value], peers: &mut Vec<SocketAddr>) {
    for entry in list {
        if peers.len() >= MAX_PEERS_PER_RESPONSE {
            break;
        }
        let Some(entry) = entry.as_dict() else {
            continue;
        };
        let ip = entry
            .get(b"ip".as_slice())
            .and_then(Value::as_byte_str)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.trim().parse::<IpAddr>().ok());
        let port = entry.get(b"port".as_slice()).and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());
        if let (Some(ip), Some(port)) = (ip, port) {
            push_peer(peers, SocketAddr::new(ip, port));
        }
    }
}

/// A non-negative integer as seconds; negative values count as zero (clamped later).
fn secs(v: &Value) -> Option<Duration> {
    match v.as_u64() {
        Some(s) => Some(Duration::from_secs(s)),
        None => v.as_i64().map(|_| Duration::ZERO),
    }
}

/// A non-negative integer as a count, saturating at `u32::MAX`; negative values are dropped.
fn count(v: &Value) -> Option<u32> {
    v.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// Tracker-supplied text, lossily decoded and cut to [`MAX_TEXT_LEN`] bytes.
fn text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_TEXT_LEN)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PeerId;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn params() -> AnnounceParams {
        AnnounceParams {
            info_hash: InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap(),
            peer_id: PeerId(*b"-SH0001-a b~c.d_e-\xff\x00"),
            port: 6881,
            ip: None,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: AnnounceEvent::Started,
            num_want: 50,
            key: 0xdead_beef,
            tracker_id: None,
            ipv6: None,
        }
    }

    // Captured from Debian's opentracker on 127.0.0.1 (three peers, compact).
    const OPENTRACKER_ANNOUNCE: &str = "64383a636f6d706c65746569316531303a646f776e6c6f616465646930\
        6531303a696e636f6d706c657465693265383a696e74657276616c69313835326531323a6d696e20696e7465\
        7276616c6939323665353a706565727331383a7f0000011ae17f0000011ae37f0000011ae265";
    // opentracker's answer for an info hash missing from its whitelist.
    const OPENTRACKER_FAILURE: &str = "6431343a6661696c75726520726561736f6e36333a52657175657374\
        656420646f776e6c6f6164206973206e6f7420617574686f72697a656420666f7220757365207769746820\
        7468697320747261636b65722e65";
    const OPENTRACKER_SCRAPE: &str = "64353a66696c65736432303a0123456789abcdef0123456789abcdef01\
        23456764383a636f6d706c65746569316531303a646f776e6c6f6164656469306531303a696e636f6d706c\
        657465693265656565";

    #[test]
    fn announce_url_encodes_binary_fields() {
        let url = announce_url("http://t.example:6969/announce", &params());
        assert_eq!(
            url,
            "http://t.example:6969/announce?\
             info_hash=%01%23Eg%89%AB%CD%EF%01%23Eg%89%AB%CD%EF%01%23Eg\
             &peer_id=-SH0001-a%20b~c.d_e-%FF%00\
             &port=6881&uploaded=1&downloaded=2&left=3\
             &key=deadbeef&compact=1&no_peer_id=1&event=started&numwant=50"
        );
    }

    #[test]
    fn a_mapped_address_and_port_are_announced() {
        let p = AnnounceParams { port: 7000, ip: Some("203.0.113.7".parse().unwrap()), ..params() };
        let url = announce_url("http://t/a", &p);
        assert!(url.contains("&port=7000&") && url.contains("&left=3&ip=203.0.113.7&key="), "{url}");
    }

    #[test]
    fn announce_url_keeps_existing_query_and_drops_fragment() {
        let mut p = params();
        p.event = AnnounceEvent::None;
        p.num_want = u32::MAX;
        p.tracker_id = Some("a&b".into());
        let url = announce_url("https://t.example/a?passkey=xyz#frag", &p);
        assert!(url.starts_with("https://t.example/a?passkey=xyz&info_hash="), "{url}");
        assert!(!url.contains("event=") && !url.contains("numwant") && !url.contains('#'));
        assert!(url.ends_with("&trackerid=a%26b"), "{url}");
    }

    #[test]
    fn announce_url_carries_our_ipv6_address_bep_7() {
        let mut p = params();
        assert!(!announce_url("http://t/announce", &p).contains("ipv6"), "none known, none sent");
        p.ipv6 = Some("2001:db8::1:5".parse().unwrap());
        let url = announce_url("http://t/announce", &p);
        assert!(url.ends_with("&ipv6=2001%3Adb8%3A%3A1%3A5"), "{url}");
    }

    #[test]
    fn scrape_urls_follow_bep48() {
        let s = |u: &str| scrape_url(u);
        assert_eq!(s("http://t.example/announce").as_deref(), Some("http://t.example/scrape"));
        assert_eq!(s("http://t/x/announce.php?pk=1/2").as_deref(), Some("http://t/x/scrape.php?pk=1/2"));
        assert_eq!(s("http://t/announce?a=b").as_deref(), Some("http://t/scrape?a=b"));
        assert_eq!(s("http://t/a"), None);
        assert_eq!(s("http://t/announce/x"), None);
        assert_eq!(s("http://announce"), None);
        assert_eq!(s("http://t/x%064announce"), None);
        assert_eq!(s("garbage"), None);
    }

    #[test]
    fn parses_real_opentracker_announce() {
        let r = parse_announce(&hex(OPENTRACKER_ANNOUNCE)).unwrap();
        assert_eq!(r.interval, Duration::from_secs(1852));
        assert_eq!(r.min_interval, Some(Duration::from_secs(926)));
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(2)));
        let want: Vec<SocketAddr> =
            ["127.0.0.1:6881", "127.0.0.1:6883", "127.0.0.1:6882"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(r.peers, want);
        assert_eq!((r.tracker_id, r.warning), (None, None));
    }

    #[test]
    fn failure_reason_is_an_error() {
        assert_eq!(
            parse_announce(&hex(OPENTRACKER_FAILURE)),
            Err(TrackerError::Failure("Requested download is not authorized for use with this tracker.".into()))
        );
        assert!(matches!(parse_scrape(&hex(OPENTRACKER_FAILURE), &params().info_hash), Err(TrackerError::Failure(_))));
    }

    #[test]
    fn parses_dict_peers_peers6_warning_and_unsorted_keys() {
        // Keys deliberately out of order; one peer is a host name and one has port 0.
        let mut body = b"d8:intervali900e5:peersl".to_vec();
        body.extend_from_slice(b"d2:ip8:10.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti51413ee");
        body.extend_from_slice(b"d4:porti80e2:ip11:example.come");
        body.extend_from_slice(b"d2:ip8:10.0.0.24:porti0ee");
        body.extend_from_slice(b"d2:ip3:::14:porti6881ee");
        body.extend_from_slice(b"i5ee");
        body.extend_from_slice(b"6:peers618:");
        body.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        body.extend_from_slice(&[0x1a, 0xe1]);
        body.extend_from_slice(b"15:warning message4:slow10:tracker id3:abc8:completei-1ee");
        let r = parse_announce(&body).unwrap();
        let want: Vec<SocketAddr> =
            ["10.0.0.1:51413", "[::1]:6881", "[2001:db8::1]:6881"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(r.peers, want);
        assert_eq!(r.interval, Duration::from_secs(900));
        assert_eq!(r.min_interval, None);
        assert_eq!(r.warning.as_deref(), Some("slow"));
        assert_eq!(r.tracker_id.as_deref(), Some("abc"));
        assert_eq!(r.complete, None, "negative counts are dropped");
    }

    #[test]
    fn intervals_are_clamped_and_defaulted() {
        let r = parse_announce(b"d8:intervali1e12:min intervali0e5:peers0:e").unwrap();
        assert_eq!(r.interval, super::super::MIN_INTERVAL);
        assert_eq!(r.min_interval, Some(super::super::MIN_MIN_INTERVAL));
        let r = parse_announce(b"d8:intervali99999999999999ee").unwrap();
        assert_eq!(r.interval, super::super::MAX_INTERVAL);
        let r = parse_announce(b"d8:intervali-5ee").unwrap();
        assert_eq!(r.interval, super::super::MIN_INTERVAL);
        assert_eq!(parse_announce(b"de").unwrap().interval, DEFAULT_INTERVAL);
        assert!(parse_announce(b"d8:interval3:abce").is_err());
    }

    #[test]
    fn trailing_bytes_after_the_dictionary_are_ignored() {
        let r = parse_announce(b"d8:intervali1800e5:peers6:\x01\x02\x03\x04\x00\x50e\r\n").unwrap();
        assert_eq!(r.peers, vec!["1.2.3.4:80".parse().unwrap()]);
    }

    #[test]
    fn peer_count_is_capped() {
        let n = MAX_PEERS_PER_RESPONSE + 10;
        let mut body = format!("d8:intervali1800e5:peers{}:", n * 6).into_bytes();
        for i in 0..n {
            body.extend_from_slice(&[10, 0, (i >> 8) as u8, i as u8, 0x1a, 0xe1]);
        }
        body.push(b'e');
        assert_eq!(parse_announce(&body).unwrap().peers.len(), MAX_PEERS_PER_RESPONSE);
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        let bad: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"<html>Invalid Request</html>".to_vec(),
            b"d8:interval".to_vec(),
            b"d5:peers7:1234567e".to_vec(),
            b"d5:peers5:12345e".to_vec(),
            b"d6:peers65:12345e".to_vec(),
            b"d5:peersi3ee".to_vec(),
            b"d6:peers6le".to_vec(),
            b"d5:peers99999999999999999999999:e".to_vec(),
            b"li1ee".to_vec(),
            [b"d1:a".as_slice(), &vec![b'l'; 100_000]].concat(),
            [b"d1:a".as_slice(), &b"d1:a".repeat(50_000)].concat(),
        ];
        for body in &bad {
            assert!(parse_announce(body).is_err(), "{:?}", String::from_utf8_lossy(body));
            assert!(parse_scrape(body, &InfoHash::default()).is_err());
        }
        // Every prefix of a real answer is handled without panicking.
        let real = hex(OPENTRACKER_ANNOUNCE);
        for end in 0..real.len() {
            let _ = parse_announce(&real[..end]);
        }
    }

    #[test]
    fn huge_string_lengths_are_errors_not_panics() {
        // Found by the `tracker_http` fuzz target: a length near `usize::MAX` slipped past the
        // old nesting scan (which saturated) and overflowed bt_bencode's offset arithmetic.
        let body = b"d5:fil0018446744073709551615:l000000000000000:00000000:0000000000000:0";
        assert!(parse_announce(body).is_err());
        assert!(parse_scrape(body, &InfoHash::default()).is_err());
        let body = b"d5:files18446744073709551615:e";
        assert!(matches!(parse_announce(body), Err(TrackerError::Bencode(_))));
        assert!(matches!(parse_scrape(body, &InfoHash::default()), Err(TrackerError::Bencode(_))));
    }

    #[test]
    fn parses_real_opentracker_scrape() {
        let ih = params().info_hash;
        let s = parse_scrape(&hex(OPENTRACKER_SCRAPE), &ih).unwrap();
        assert_eq!(s, ScrapeStats { complete: 1, incomplete: 2, downloaded: 0 });
        assert_eq!(
            parse_scrape(&hex(OPENTRACKER_SCRAPE), &InfoHash([9; 20])),
            Err(TrackerError::Malformed("scrape answer does not mention the torrent"))
        );
        assert!(parse_scrape(b"d5:filesi1ee", &ih).is_err());
    }

    #[test]
    fn long_texts_are_cut() {
        let mut body = b"d14:failure reason5000:".to_vec();
        body.extend(std::iter::repeat_n(b'x', 5000));
        body.push(b'e');
        match parse_announce(&body) {
            Err(TrackerError::Failure(s)) => assert_eq!(s.len(), MAX_TEXT_LEN),
            other => panic!("{other:?}"),
        }
    }
}
