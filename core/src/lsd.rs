//! Local Service Discovery (BEP 14): announces on a LAN multicast group which torrents we
//! take part in, and learns who else nearby does.
//!
//! An announce is a small HTTP-like datagram (`BT-SEARCH * HTTP/1.1`, then `Host`, `Port`, one
//! or more `Infohash` and an optional `cookie` header). [`encode`] writes one, [`parse`] reads
//! one strictly (every datagram from the LAN is untrusted), and [`Lsd`] decides when each
//! torrent is announced and turns received announces into peers. The runtime owns the socket.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::types::{InfoHash, Instant};

/// The UDP port of both multicast groups.
pub const PORT: u16 = 6771;
/// The IPv4 group (organization-local scope).
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
/// The IPv6 group (site-local scope).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f);
/// Larger datagrams are rejected unread (BEP 14 announces fit one unfragmented packet).
pub const MAX_DATAGRAM: usize = 1400;
/// Most distinct info-hashes accepted in one received announce (about 26 would fit).
pub const MAX_INFO_HASHES: usize = 20;
/// Most info-hashes we put in one announce (keeps it well under [`MAX_DATAGRAM`]).
pub const BATCH: usize = 16;
/// How often each torrent is announced.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5 * 60);
/// A torrent is never announced twice within this, whoever asks.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Why a received datagram is not a valid announce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LsdError {
    /// Over [`MAX_DATAGRAM`] bytes.
    #[error("datagram of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not ASCII text.
    #[error("announce is not ASCII text")]
    NotText,
    /// The first line is not `BT-SEARCH * HTTP/1.1`.
    #[error("not a BT-SEARCH request")]
    BadRequestLine,
    /// A header line without a colon, or the blank line that ends the headers is missing.
    #[error("malformed header section")]
    BadHeader,
    /// The `Port` header is missing, repeated, or not a port number from 1 to 65535.
    #[error("missing or invalid Port header")]
    BadPort,
    /// An `Infohash` header is not 40 hex digits.
    #[error("invalid Infohash header")]
    BadInfoHash,
    /// No `Infohash` header at all.
    #[error("no Infohash header")]
    NoInfoHash,
    /// More than [`MAX_INFO_HASHES`] info-hashes.
    #[error("more than {MAX_INFO_HASHES} info-hashes")]
    TooManyInfoHashes,
}

/// A received announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The sender's BitTorrent listen port.
    pub port: u16,
    /// The torrents it takes part in (duplicates removed, order kept).
    pub info_hashes: Vec<InfoHash>,
    /// The sender's cookie, if it sent one (lets a client recognize its own announces).
    pub cookie: Option<String>,
}

/// The `Host` header value for one group.
fn host(v6: bool) -> String {
    if v6 {
        format!("[{GROUP_V6}]:{PORT}")
    } else {
        format!("{GROUP_V4}:{PORT}")
    }
}

/// Encodes an announce of `info_hashes` (the caller keeps it to a few dozen) for the IPv4 or
/// IPv6 group. An empty `cookie` is left out.
pub fn encode(port: u16, info_hashes: &[InfoHash], cookie: &str, v6: bool) -> Vec<u8> {
    let mut s = String::with_capacity(80 + 52 * info_hashes.len());
    // Writing to a String cannot fail.
    let _ = write!(s, "BT-SEARCH * HTTP/1.1\r\nHost: {}\r\nPort: {port}\r\n", host(v6));
    for ih in info_hashes {
        let _ = write!(s, "Infohash: {ih}\r\n");
    }
    if !cookie.is_empty() {
        let _ = write!(s, "cookie: {cookie}\r\n");
    }
    s.push_str("\r\n\r\n");
    s.into_bytes()
}

/// Parses a received datagram. Header names are case-insensitive and unknown headers are
/// ignored; anything else out of shape is an error.
pub fn parse(data: &[u8]) -> Result<Announce, LsdError> {
    if data.len() > MAX_DATAGRAM {
        return Err(LsdError::TooLarge(data.len()));
    }
    if !data.is_ascii() {
        return Err(LsdError::NotText);
    }
    // ASCII is valid UTF-8.
    let text = std::str::from_utf8(data).map_err(|_| LsdError::NotText)?;
    let rest = text.strip_prefix("BT-SEARCH * HTTP/1.1\r\n").ok_or(LsdError::BadRequestLine)?;
    // The headers end at the first blank line; what follows is ignored.
    let head = if rest.starts_with("\r\n") {
        ""
    } else {
        let end = rest.find("\r\n\r\n").ok_or(LsdError::BadHeader)?;
        rest.get(..end).ok_or(LsdError::BadHeader)?
    };
    let lines = head.split("\r\n").filter(|l| !l.is_empty());
    let mut port: Option<u16> = None;
    let mut info_hashes: Vec<InfoHash> = Vec::new();
    let mut cookie = None;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(LsdError::BadHeader)?;
        let value = value.trim_matches([' ', '\t']);
        match name.trim_matches([' ', '\t']).to_ascii_lowercase().as_str() {
            "port" => {
                if port.is_some() {
                    return Err(LsdError::BadPort);
                }
                let p = if value.bytes().all(|b| b.is_ascii_digit()) { value.parse::<u16>().ok() } else { None };
                port = Some(p.filter(|p| *p != 0).ok_or(LsdError::BadPort)?);
            }
            "infohash" => {
                let ih = InfoHash::from_hex(value).map_err(|_| LsdError::BadInfoHash)?;
                if !info_hashes.contains(&ih) {
                    if info_hashes.len() >= MAX_INFO_HASHES {
                        return Err(LsdError::TooManyInfoHashes);
                    }
                    info_hashes.push(ih);
                }
            }
            "cookie" => cookie = Some(value.to_string()),
            _ => {}
        }
    }
    let port = port.ok_or(LsdError::BadPort)?;
    if info_hashes.is_empty() {
        return Err(LsdError::NoInfoHash);
    }
    Ok(Announce { port, info_hashes, cookie })
}

/// When each torrent is announced, and what received announces mean.
#[derive(Debug)]
pub struct Lsd {
    cookie: String,
    /// When each known torrent is announced next.
    next: BTreeMap<InfoHash, Instant>,
    /// When each torrent was last announced (kept a while after it leaves, for the rate limit).
    last: BTreeMap<InfoHash, Instant>,
}

impl Lsd {
    /// A machine whose announces carry `cookie` (so it can ignore its own when the group loops
    /// them back). The cookie should be random per session; a few ASCII letters or digits.
    pub fn new(cookie: String) -> Lsd {
        let cookie = cookie.chars().filter(|c| c.is_ascii_alphanumeric()).take(32).collect();
        Lsd { cookie, next: BTreeMap::new(), last: BTreeMap::new() }
    }

    /// Our cookie.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// Asks for a torrent to be announced as soon as the rate limit allows (e.g. it was just
    /// resumed). Has an effect only on torrents [`Lsd::poll_announces`] was told about.
    pub fn announce_soon(&mut self, ih: &InfoHash, now: Instant) {
        let earliest = self.earliest(ih, now);
        if let Some(at) = self.next.get_mut(ih) {
            *at = (*at).min(earliest);
        }
    }

    /// The earliest the rate limit lets `ih` be announced.
    fn earliest(&self, ih: &InfoHash, now: Instant) -> Instant {
        self.last.get(ih).map_or(now, |l| now.max(*l + MIN_INTERVAL))
    }

    /// The announces due now, for `active`: the torrents that may be announced (active and
    /// not private: BEP 27 keeps private torrents off LSD). New torrents are announced at
    /// once (rate limit permitting), the others every [`ANNOUNCE_EVERY`]; a torrent due within
    /// a minute joins an announce that goes out anyway, so announces come in batches. Each
    /// entry is one datagram's list of info-hashes, to [`encode`] for each group.
    pub fn poll_announces(&mut self, active: &[InfoHash], now: Instant) -> Vec<Vec<InfoHash>> {
        self.next.retain(|ih, _| active.contains(ih));
        self.last.retain(|_, at| now < *at + MIN_INTERVAL);
        for ih in active {
            if !self.next.contains_key(ih) {
                let at = self.earliest(ih, now);
                self.next.insert(*ih, at);
            }
        }
        if !self.next.values().any(|at| *at <= now) {
            return Vec::new();
        }
        let due: Vec<InfoHash> = self
            .next
            .iter()
            .filter(|(ih, at)| **at <= now + MIN_INTERVAL && self.earliest(ih, now) <= now)
            .map(|(ih, _)| *ih)
            .collect();
        for ih in &due {
            self.next.insert(*ih, now + ANNOUNCE_EVERY);
            self.last.insert(*ih, now);
        }
        due.chunks(BATCH).map(|c| c.to_vec()).collect()
    }

    /// When [`Lsd::poll_announces`] has something to send next, if anything is known.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next.values().min().copied()
    }

    /// The peers a received datagram announces: each of its info-hashes with the sender's
    /// address and announced port. Our own announces (by cookie) give nothing.
    pub fn handle_datagram(&self, from: IpAddr, data: &[u8]) -> Result<Vec<(InfoHash, SocketAddr)>, LsdError> {
        let a = parse(data)?;
        if a.cookie.as_deref() == Some(self.cookie.as_str()) && !self.cookie.is_empty() {
            return Ok(Vec::new());
        }
        let addr = SocketAddr::new(from, a.port);
        Ok(a.info_hashes.into_iter().map(|ih| (ih, addr)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn at(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    #[test]
    fn encodes_the_bep_14_layout() {
        let d = encode(6881, &[ih(0xab)], "xyz", false);
        let want = format!(
            "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: {}\r\ncookie: xyz\r\n\r\n\r\n",
            "ab".repeat(20)
        );
        assert_eq!(String::from_utf8(d).unwrap(), want);
        let d6 = String::from_utf8(encode(1, &[ih(1), ih(2)], "", true)).unwrap();
        assert!(d6.contains("Host: [ff15::efc0:988f]:6771\r\n"), "{d6}");
        assert_eq!(d6.matches("Infohash: ").count(), 2);
        assert!(!d6.contains("cookie"));
    }

    #[test]
    fn parses_what_it_encodes() {
        let a = parse(&encode(51413, &[ih(1), ih(2)], "c00kie", false)).unwrap();
        assert_eq!(a, Announce { port: 51413, info_hashes: vec![ih(1), ih(2)], cookie: Some("c00kie".into()) });
    }

    #[test]
    fn headers_are_case_insensitive_and_unknown_ones_ignored() {
        let text = format!(
            "BT-SEARCH * HTTP/1.1\r\nHOST: 239.192.152.143:6771\r\nport:  7000 \r\nX-Other: 1\r\nINFOHASH: {}\r\n\r\n",
            "AB".repeat(20)
        );
        let a = parse(text.as_bytes()).unwrap();
        assert_eq!((a.port, a.info_hashes, a.cookie), (7000, vec![ih(0xab)], None));
    }

    #[test]
    fn rejects_malformed_announces() {
        let good_ih = "00".repeat(20);
        let cases: Vec<(String, LsdError)> = vec![
            (format!("GET / HTTP/1.1\r\nPort: 1\r\nInfohash: {good_ih}\r\n\r\n"), LsdError::BadRequestLine),
            (format!("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: {good_ih}\r\n"), LsdError::BadHeader),
            (format!("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: {good_ih}"), LsdError::BadHeader),
            (format!("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\nInfohash: {good_ih}\r\n\r\n"), LsdError::NoInfoHash),
            (format!("BT-SEARCH * HTTP/1.1\r\nPort 1\r\nInfohash: {good_ih}\r\n\r\n"), LsdError::BadHeader),
            (format!("BT-SEARCH * HTTP/1.1\r\nInfohash: {good_ih}\r\n\r\n"), LsdError::BadPort),
            (format!("BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: {good_ih}\r\n\r\n"), LsdError::BadPort),
            (format!("BT-SEARCH * HTTP/1.1\r\nPort: 65536\r\nInfohash: {good_ih}\r\n\r\n"), LsdError::BadPort),
            (format!("BT-SEARCH * HTTP/1.1\r\nPort: +80\r\nInfohash: {good_ih}\r\n\r\n"), LsdError::BadPort),
            (format!("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nPort: 2\r\nInfohash: {good_ih}\r\n\r\n"), LsdError::BadPort),
            ("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: 1234\r\n\r\n".into(), LsdError::BadInfoHash),
            ("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n".into(), LsdError::NoInfoHash),
            ("".into(), LsdError::BadRequestLine),
        ];
        for (text, err) in cases {
            assert_eq!(parse(text.as_bytes()), Err(err), "{text:?}");
        }
        assert_eq!(parse(&[0xff; 10]), Err(LsdError::NotText));
        assert_eq!(parse(&[b'a'; MAX_DATAGRAM + 1]), Err(LsdError::TooLarge(MAX_DATAGRAM + 1)));
    }

    #[test]
    fn too_many_info_hashes_are_refused() {
        let hashes: Vec<InfoHash> = (0..=MAX_INFO_HASHES as u8).map(ih).collect();
        // Short lines so that the size limit is not what refuses it.
        let mut text = String::from("BT-SEARCH * HTTP/1.1\r\nPort:1\r\n");
        for h in &hashes {
            text.push_str(&format!("infohash:{h}\r\n"));
        }
        text.push_str("\r\n");
        assert!(text.len() <= MAX_DATAGRAM);
        assert_eq!(parse(text.as_bytes()), Err(LsdError::TooManyInfoHashes));
        // Repeats of one hash count once.
        let one = format!("BT-SEARCH * HTTP/1.1\r\nPort:1\r\n{}\r\n", format!("infohash:{}\r\n", ih(1)).repeat(20));
        assert_eq!(parse(one.as_bytes()).unwrap().info_hashes, vec![ih(1)]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let base = encode(6881, &[ih(3), ih(4)], "abc", false);
        for cut in 0..base.len() {
            let _ = parse(&base[..cut]);
        }
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut d = base.clone();
            for _ in 0..4 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (x as usize >> 8) % d.len();
                d[i] = (x >> 3) as u8;
            }
            let _ = parse(&d);
        }
    }

    #[test]
    fn own_announces_are_ignored_and_others_become_peers() {
        let lsd = Lsd::new("me".into());
        let from = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7));
        assert_eq!(lsd.handle_datagram(from, &encode(6881, &[ih(1)], "me", false)), Ok(Vec::new()));
        let peers = lsd.handle_datagram(from, &encode(7000, &[ih(1), ih(2)], "you", false)).unwrap();
        let addr = SocketAddr::new(from, 7000);
        assert_eq!(peers, vec![(ih(1), addr), (ih(2), addr)]);
        // No cookie at all is someone else.
        assert_eq!(lsd.handle_datagram(from, &encode(7000, &[ih(1)], "", false)).unwrap().len(), 1);
    }

    #[test]
    fn announces_new_torrents_at_once_then_every_five_minutes_batched() {
        let mut lsd = Lsd::new("c".into());
        assert_eq!(lsd.poll_announces(&[ih(1)], at(0)), vec![vec![ih(1)]]);
        assert!(lsd.poll_announces(&[ih(1)], at(1)).is_empty());
        // A torrent added 4.5 minutes later goes out at once, and the first one joins it
        // (it would be due within a minute anyway).
        let got = lsd.poll_announces(&[ih(1), ih(2)], at(270));
        assert_eq!(got, vec![vec![ih(1), ih(2)]]);
        assert_eq!(lsd.poll_timeout(), Some(at(570)));
        assert!(lsd.poll_announces(&[ih(1), ih(2)], at(569)).is_empty());
        assert_eq!(lsd.poll_announces(&[ih(1), ih(2)], at(570)), vec![vec![ih(1), ih(2)]]);
    }

    #[test]
    fn a_torrent_is_announced_at_most_once_a_minute() {
        let mut lsd = Lsd::new("c".into());
        assert_eq!(lsd.poll_announces(&[ih(1)], at(0)).len(), 1);
        lsd.announce_soon(&ih(1), at(10));
        assert!(lsd.poll_announces(&[ih(1)], at(10)).is_empty());
        assert_eq!(lsd.poll_announces(&[ih(1)], at(60)), vec![vec![ih(1)]]);
        // Removed and added again at once: still rate limited.
        assert!(lsd.poll_announces(&[], at(70)).is_empty());
        assert!(lsd.poll_announces(&[ih(1)], at(80)).is_empty());
        assert_eq!(lsd.poll_announces(&[ih(1)], at(120)), vec![vec![ih(1)]]);
    }

    #[test]
    fn many_torrents_are_split_into_datagrams_that_fit() {
        let mut lsd = Lsd::new("cookie123".into());
        let all: Vec<InfoHash> = (0..40).map(ih).collect();
        let batches = lsd.poll_announces(&all, at(0));
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 40);
        for b in &batches {
            let d = encode(65535, b, lsd.cookie(), true);
            assert!(d.len() <= MAX_DATAGRAM);
            assert_eq!(&parse(&d).unwrap().info_hashes, b);
        }
    }
}
