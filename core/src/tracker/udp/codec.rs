//! The BEP 15 packet codec, symmetric (both sides encode and decode) so that a simulated
//! tracker can use it as well as our client.

use std::net::SocketAddr;

use crate::tracker::announce::{
    compact_v4, compact_v6, write_compact, AnnounceEvent, AnnounceParams, ScrapeStats, TrackerError,
};
use crate::types::{InfoHash, PeerId};

/// The magic constant that opens every connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

pub(super) const ACTION_CONNECT: u32 = 0;
pub(super) const ACTION_ANNOUNCE: u32 = 1;
pub(super) const ACTION_SCRAPE: u32 = 2;
pub(super) const ACTION_ERROR: u32 = 3;

/// A datagram a client sends to a UDP tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Asks for a connection id.
    Connect {
        /// Echoed in the answer.
        transaction_id: u32,
    },
    /// An announce; `params.tracker_id` is not carried over UDP.
    Announce {
        /// From the connect answer.
        connection_id: u64,
        /// Echoed in the answer.
        transaction_id: u32,
        /// What we announce (IP is always sent as 0: "use the sender's address").
        params: AnnounceParams,
    },
    /// A scrape of one or more torrents.
    Scrape {
        /// From the connect answer.
        connection_id: u64,
        /// Echoed in the answer.
        transaction_id: u32,
        /// The torrents to scrape.
        info_hashes: Vec<InfoHash>,
    },
}

/// A datagram a UDP tracker sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Grants a connection id.
    Connect {
        /// From the request.
        transaction_id: u32,
        /// To put in the next requests for a minute.
        connection_id: u64,
    },
    /// Answers an announce.
    Announce {
        /// From the request.
        transaction_id: u32,
        /// Seconds until the next announce.
        interval: u32,
        /// Leechers in the swarm.
        leechers: u32,
        /// Seeders in the swarm.
        seeders: u32,
        /// Peers, exactly as sent (one address family per answer).
        peers: Vec<SocketAddr>,
    },
    /// Answers a scrape, one entry per requested torrent in request order.
    Scrape {
        /// From the request.
        transaction_id: u32,
        /// Figures per torrent.
        stats: Vec<ScrapeStats>,
    },
    /// The tracker refuses the request.
    Error {
        /// From the request.
        transaction_id: u32,
        /// Why, as the tracker put it.
        message: String,
    },
}

/// A cursor over a datagram that reads big-endian integers and reports running out.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

const TOO_SHORT: TrackerError = TrackerError::Malformed("UDP packet too short");

fn event_code(e: AnnounceEvent) -> u32 {
    match e {
        AnnounceEvent::None => 0,
        AnnounceEvent::Completed => 1,
        AnnounceEvent::Started => 2,
        AnnounceEvent::Stopped => 3,
    }
}

impl Request {
    /// The datagram for this request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(98);
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce { connection_id, transaction_id, params: p } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&p.info_hash.0);
                out.extend_from_slice(&p.peer_id.0);
                out.extend_from_slice(&p.downloaded.to_be_bytes());
                out.extend_from_slice(&p.left.to_be_bytes());
                out.extend_from_slice(&p.uploaded.to_be_bytes());
                out.extend_from_slice(&event_code(p.event).to_be_bytes());
                // IP: ours if a port mapping learned it, else 0 for the sender's (IPv4 only).
                let ip = match p.ip {
                    Some(std::net::IpAddr::V4(ip)) => u32::from(ip),
                    _ => 0,
                };
                out.extend_from_slice(&ip.to_be_bytes());
                out.extend_from_slice(&p.key.to_be_bytes());
                // u32::MAX means "the tracker's default", which BEP 15 spells -1.
                let num_want: i32 =
                    if p.num_want == u32::MAX { -1 } else { i32::try_from(p.num_want).unwrap_or(i32::MAX) };
                out.extend_from_slice(&num_want.to_be_bytes());
                out.extend_from_slice(&p.port.to_be_bytes());
            }
            Request::Scrape { connection_id, transaction_id, info_hashes } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for h in info_hashes {
                    out.extend_from_slice(&h.0);
                }
            }
        }
        out
    }

    /// Parses a client's datagram (what a tracker, or a simulated one, receives).
    pub fn decode(data: &[u8]) -> Result<Request, TrackerError> {
        let mut r = Reader(data);
        let connection_id = r.u64().ok_or(TOO_SHORT)?;
        let action = r.u32().ok_or(TOO_SHORT)?;
        let transaction_id = r.u32().ok_or(TOO_SHORT)?;
        match action {
            ACTION_CONNECT if connection_id == PROTOCOL_ID => Ok(Request::Connect { transaction_id }),
            ACTION_CONNECT => Err(TrackerError::Malformed("connect without the protocol id")),
            ACTION_ANNOUNCE => {
                let info_hash = InfoHash(r.array().ok_or(TOO_SHORT)?);
                let peer_id = PeerId(r.array().ok_or(TOO_SHORT)?);
                let downloaded = r.u64().ok_or(TOO_SHORT)?;
                let left = r.u64().ok_or(TOO_SHORT)?;
                let uploaded = r.u64().ok_or(TOO_SHORT)?;
                let event = match r.u32().ok_or(TOO_SHORT)? {
                    0 => AnnounceEvent::None,
                    1 => AnnounceEvent::Completed,
                    2 => AnnounceEvent::Started,
                    3 => AnnounceEvent::Stopped,
                    _ => return Err(TrackerError::Malformed("unknown announce event")),
                };
                let ip = r.u32().ok_or(TOO_SHORT)?;
                let key = r.u32().ok_or(TOO_SHORT)?;
                let num_want = r.u32().ok_or(TOO_SHORT)?;
                // Any negative value means "default".
                let num_want = if num_want > i32::MAX as u32 { u32::MAX } else { num_want };
                let port = r.u16().ok_or(TOO_SHORT)?;
                let params = AnnounceParams {
                    info_hash,
                    peer_id,
                    port,
                    ip: (ip != 0).then(|| std::net::Ipv4Addr::from(ip).into()),
                    uploaded,
                    downloaded,
                    left,
                    event,
                    num_want,
                    key,
                    tracker_id: None,
                    ipv6: None,
                };
                Ok(Request::Announce { connection_id, transaction_id, params })
            }
            ACTION_SCRAPE => {
                let rest = r.rest();
                if rest.is_empty() || !rest.chunks_exact(20).remainder().is_empty() {
                    return Err(TrackerError::Malformed("scrape request length"));
                }
                let info_hashes = rest
                    .chunks_exact(20)
                    .map(|c| {
                        let mut h = [0u8; 20];
                        h.copy_from_slice(c);
                        InfoHash(h)
                    })
                    .collect();
                Ok(Request::Scrape { connection_id, transaction_id, info_hashes })
            }
            _ => Err(TrackerError::Malformed("unknown UDP action")),
        }
    }
}

impl Response {
    /// The transaction id this answer echoes.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
        }
    }

    /// The datagram for this answer; announce peers are written in their own address family.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Connect { transaction_id, connection_id } => {
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce { transaction_id, interval, leechers, seeders, peers } => {
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&interval.to_be_bytes());
                out.extend_from_slice(&leechers.to_be_bytes());
                out.extend_from_slice(&seeders.to_be_bytes());
                for p in peers {
                    write_compact(&mut out, p);
                }
            }
            Response::Scrape { transaction_id, stats } => {
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for s in stats {
                    out.extend_from_slice(&s.complete.to_be_bytes());
                    out.extend_from_slice(&s.downloaded.to_be_bytes());
                    out.extend_from_slice(&s.incomplete.to_be_bytes());
                }
            }
            Response::Error { transaction_id, message } => {
                out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(message.as_bytes());
            }
        }
        out
    }

    /// Parses a tracker's datagram; `ipv6` says the tracker was reached over IPv6, which
    /// (BEP 15) makes announce peers 18 bytes each instead of 6.
    pub fn decode(data: &[u8], ipv6: bool) -> Result<Response, TrackerError> {
        let mut r = Reader(data);
        let action = r.u32().ok_or(TOO_SHORT)?;
        let transaction_id = r.u32().ok_or(TOO_SHORT)?;
        match action {
            ACTION_CONNECT => {
                let connection_id = r.u64().ok_or(TOO_SHORT)?;
                Ok(Response::Connect { transaction_id, connection_id })
            }
            ACTION_ANNOUNCE => {
                let interval = r.u32().ok_or(TOO_SHORT)?;
                let leechers = r.u32().ok_or(TOO_SHORT)?;
                let seeders = r.u32().ok_or(TOO_SHORT)?;
                let rest = r.rest();
                let peers = if ipv6 { compact_v6(rest)?.collect() } else { compact_v4(rest)?.collect() };
                Ok(Response::Announce { transaction_id, interval, leechers, seeders, peers })
            }
            ACTION_SCRAPE => {
                let rest = r.rest();
                if !rest.chunks_exact(12).remainder().is_empty() {
                    return Err(TrackerError::Malformed("scrape answer length"));
                }
                let stats = rest
                    .chunks_exact(12)
                    .map(|c| {
                        let word = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                        ScrapeStats { complete: word(0), downloaded: word(4), incomplete: word(8) }
                    })
                    .collect();
                Ok(Response::Scrape { transaction_id, stats })
            }
            ACTION_ERROR => {
                let text = r.rest();
                let text = &text[..text.len().min(1024)];
                let message = String::from_utf8_lossy(text).into_owned();
                Ok(Response::Error { transaction_id, message })
            }
            _ => Err(TrackerError::Malformed("unknown UDP action")),
        }
    }
}

/// The host and port of a `udp://host:port[/…]` tracker URL, for the runtime to resolve.
///
/// The port is required (BEP 15 has no default); a path (BEP 41) is ignored.
pub fn parse_udp_url(url: &str) -> Result<(String, u16), TrackerError> {
    let bad = || TrackerError::InvalidUrl(url.to_owned());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("udp") {
        return Err(TrackerError::UnsupportedScheme(scheme.to_owned()));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':').ok_or_else(bad)?)
    } else {
        authority.rsplit_once(':').ok_or_else(bad)?
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn params() -> AnnounceParams {
        AnnounceParams {
            info_hash: InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap(),
            peer_id: PeerId(*b"-SH0001-dddddddddddd"),
            port: 6884,
            ip: None,
            uploaded: 0,
            downloaded: 0,
            left: 100,
            event: AnnounceEvent::Started,
            num_want: u32::MAX,
            key: 0xabcd_ef01,
            tracker_id: None,
            ipv6: None,
        }
    }
    #[test]
    fn announce_request_matches_the_python_reference_encoding() {
        // Laid out by hand from BEP 15's table: downloaded, left, uploaded, event, IP, key,
        // num_want (-1), port.
        let req =
            Request::Announce { connection_id: 0xf976_d506_082f_2989, transaction_id: 0x5566_7788, params: params() };
        let bytes = req.encode();
        let want = hex(concat!(
            "f976d506082f2989",
            "00000001",
            "55667788",
            "0123456789abcdef0123456789abcdef01234567",
            "2d5348303030312d646464646464646464646464",
            "0000000000000000",
            "0000000000000064",
            "0000000000000000",
            "00000002",
            "00000000",
            "abcdef01",
            "ffffffff",
            "1ae4"
        ));
        assert_eq!(bytes, want);
        assert_eq!(Request::decode(&bytes).unwrap(), req);
        // A mapped external address goes in the IP field.
        let params = AnnounceParams { ip: Some("203.0.113.7".parse().unwrap()), ..params() };
        let req = Request::Announce { connection_id: 1, transaction_id: 2, params };
        let bytes = req.encode();
        assert_eq!(&bytes[84..88], &[203, 0, 113, 7]);
        assert_eq!(Request::decode(&bytes).unwrap(), req);
    }

    #[test]
    fn request_and_response_round_trips() {
        let reqs = [
            Request::Connect { transaction_id: 7 },
            Request::Scrape {
                connection_id: 1,
                transaction_id: 2,
                info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
            },
        ];
        for r in reqs {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        let v4 = Response::Announce {
            transaction_id: 9,
            interval: 1800,
            leechers: 3,
            seeders: 4,
            peers: vec!["1.2.3.4:5".parse().unwrap(), "5.6.7.8:9".parse().unwrap()],
        };
        assert_eq!(Response::decode(&v4.encode(), false).unwrap(), v4);
        let v6 = Response::Announce {
            transaction_id: 9,
            interval: 1800,
            leechers: 3,
            seeders: 4,
            peers: vec!["[2001:db8::1]:6881".parse().unwrap()],
        };
        assert_eq!(Response::decode(&v6.encode(), true).unwrap(), v6);
        let others = [
            Response::Connect { transaction_id: 1, connection_id: u64::MAX },
            Response::Scrape {
                transaction_id: 2,
                stats: vec![ScrapeStats { complete: 1, incomplete: 2, downloaded: 3 }],
            },
            Response::Error { transaction_id: 3, message: "nope".into() },
        ];
        for r in others {
            assert_eq!(Response::decode(&r.encode(), false).unwrap(), r);
        }
    }

    #[test]
    fn decodes_real_opentracker_datagrams() {
        let connect = Response::decode(&hex("0000000011223344f976d506082f2989"), false).unwrap();
        assert_eq!(connect, Response::Connect { transaction_id: 0x1122_3344, connection_id: 0xf976_d506_082f_2989 });
        let announce = hex("0000000155667788000006f000000002000000027f0000011ae17f0000011ae3\
             7f0000011ae47f0000011ae2");
        match Response::decode(&announce, false).unwrap() {
            Response::Announce { interval, leechers, seeders, peers, .. } => {
                assert_eq!((interval, leechers, seeders, peers.len()), (1776, 2, 2, 4));
                assert_eq!(peers[2], "127.0.0.1:6884".parse().unwrap());
            }
            other => panic!("{other:?}"),
        }
        let scrape = Response::decode(&hex("0000000299aabbcc000000020000000000000002"), false);
        assert_eq!(
            scrape.unwrap(),
            Response::Scrape {
                transaction_id: 0x99aa_bbcc,
                stats: vec![ScrapeStats { complete: 2, downloaded: 0, incomplete: 2 }],
            }
        );
    }

    #[test]
    fn hostile_datagrams_never_panic() {
        let samples = [
            hex("0000000155667788000006f000000002000000027f0000011ae17f0000011ae3"),
            Request::Announce { connection_id: 1, transaction_id: 2, params: params() }.encode(),
            Response::Error { transaction_id: 3, message: "x".into() }.encode(),
        ];
        for s in &samples {
            for end in 0..s.len() {
                let _ = Response::decode(&s[..end], false);
                let _ = Response::decode(&s[..end], true);
                let _ = Request::decode(&s[..end]);
            }
        }
        assert!(Response::decode(&hex("0000000155667788000006f0000000020000000201"), false).is_err());
        assert!(Response::decode(&hex("0000000955667788"), false).is_err());
        assert!(Request::decode(&hex("00000000000000000000000000000001")).is_err());
    }

    #[test]
    fn udp_urls() {
        assert_eq!(parse_udp_url("udp://t.example:6969/announce"), Ok(("t.example".into(), 6969)));
        assert_eq!(parse_udp_url("udp://[::1]:80"), Ok(("::1".into(), 80)));
        assert!(parse_udp_url("udp://t.example").is_err());
        assert!(parse_udp_url("udp://:80").is_err());
        assert!(parse_udp_url("udp://t:0").is_err());
        assert!(parse_udp_url("udp://t:99999").is_err());
        assert!(matches!(parse_udp_url("http://t:1"), Err(TrackerError::UnsupportedScheme(_))));
    }
}
