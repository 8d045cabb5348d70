//! Magnet links (BEP 9): info-hash, display name, trackers, peers (`x.pe`) and BEP 53 file
//! selection (`so`).

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::types::InfoHash;

/// Most file indices a `so` parameter may expand to; `so=0-4294967295` must not allocate 16 GiB.
pub const MAX_SELECT_ONLY: usize = 100_000;

/// Characters escaped in the values we write: everything but RFC 3986 "unreserved".
const VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Why a magnet link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// The URI does not start with `magnet:?`.
    #[error("not a magnet link (expected it to start with `magnet:?`)")]
    NotMagnet,
    /// No `xt=urn:btih:` (nor `urn:btmh:`) parameter.
    #[error("magnet link has no info-hash (`xt=urn:btih:...`)")]
    MissingInfoHash,
    /// A btih that is neither 40 hex digits nor 32 base32 characters.
    #[error("bad info-hash {0:?}: expected 40 hex digits or 32 base32 characters")]
    BadInfoHash(String),
    /// Only a v2 (`urn:btmh:`) hash, which this engine cannot use.
    #[error("v2-only magnet links (`urn:btmh:` without `urn:btih:`) are not supported")]
    V2Only,
    /// Two different btih hashes.
    #[error("magnet link names two different info-hashes")]
    ConflictingInfoHashes,
    /// A `so` value that is not a list of indices and `a-b` ranges.
    #[error("bad file selection `so={0}`")]
    BadSelectOnly(String),
    /// A `so` value naming more than [`MAX_SELECT_ONLY`] files.
    #[error("file selection names more than {MAX_SELECT_ONLY} files")]
    TooManySelected,
}

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The torrent's v1 info-hash.
    pub info_hash: InfoHash,
    /// `dn`: a name to show until the metadata arrives.
    pub display_name: Option<String>,
    /// `tr`: tracker URLs, in order, deduplicated.
    pub trackers: Vec<String>,
    /// `x.pe`: peer addresses as `host:port` (`[v6]:port` for IPv6), deduplicated.
    pub peers: Vec<String>,
    /// BEP 53 `so`: indices of the files to download, sorted and deduplicated.
    pub select_only: Option<Vec<u32>>,
}

impl Magnet {
    /// A magnet with only an info-hash.
    pub fn new(info_hash: InfoHash) -> Self {
        Magnet { info_hash, display_name: None, trackers: vec![], peers: vec![], select_only: None }
    }

    /// Parses a `magnet:?` URI. Unknown parameters and malformed `x.pe` peers are ignored.
    pub fn parse(uri: &str) -> Result<Magnet, MagnetError> {
        let query = uri
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
            .and_then(|_| uri.get(8..))
            .ok_or(MagnetError::NotMagnet)?;
        let mut info_hash: Option<InfoHash> = None;
        let mut saw_btmh = false;
        let mut m = Magnet::new(InfoHash::default());
        for param in query.split('&') {
            let Some((key, raw)) = param.split_once('=') else {
                continue;
            };
            match base_key(key).to_ascii_lowercase().as_str() {
                "xt" => {
                    let value = decode(raw);
                    if let Some(hash) = strip_prefix_ci(&value, "urn:btih:") {
                        let hash = parse_btih(hash)?;
                        if info_hash.is_some_and(|h| h != hash) {
                            return Err(MagnetError::ConflictingInfoHashes);
                        }
                        info_hash = Some(hash);
                    } else if strip_prefix_ci(&value, "urn:btmh:").is_some() {
                        saw_btmh = true;
                    }
                }
                "dn" => m.display_name = Some(decode(&raw.replace('+', " "))),
                "tr" => push_unique(&mut m.trackers, decode(raw)),
                "x.pe" => {
                    let peer = decode(raw);
                    if valid_peer(&peer) {
                        push_unique(&mut m.peers, peer);
                    }
                }
                "so" => {
                    let mut all = m.select_only.take().unwrap_or_default();
                    all.extend(parse_select_only(&decode(raw))?);
                    all.sort_unstable();
                    all.dedup();
                    if all.len() > MAX_SELECT_ONLY {
                        return Err(MagnetError::TooManySelected);
                    }
                    m.select_only = Some(all);
                }
                _ => {}
            }
        }
        m.info_hash = match info_hash {
            Some(h) => h,
            None if saw_btmh => return Err(MagnetError::V2Only),
            None => return Err(MagnetError::MissingInfoHash),
        };
        Ok(m)
    }

    /// The magnet as a URI (parameters percent-encoded; `so` written as compact ranges).
    pub fn to_uri(&self) -> String {
        let mut uri = format!("magnet:?xt=urn:btih:{}", self.info_hash.to_hex());
        let mut add = |key: &str, value: &str| {
            uri.push('&');
            uri.push_str(key);
            uri.push('=');
            uri.extend(utf8_percent_encode(value, VALUE));
        };
        if let Some(name) = &self.display_name {
            add("dn", name);
        }
        for tracker in &self.trackers {
            add("tr", tracker);
        }
        for peer in &self.peers {
            add("x.pe", peer);
        }
        if let Some(files) = &self.select_only {
            // Only digits, `,` and `-`: nothing to escape.
            uri.push_str("&so=");
            uri.push_str(&format_ranges(files));
        }
        uri
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// `xt.1` → `xt`: numbered variants of a key mean the same.
fn base_key(key: &str) -> &str {
    match key.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => key,
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

fn decode(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !item.is_empty() && !list.contains(&item) {
        list.push(item);
    }
}

/// 40 hex digits or 32 base32 characters (either case).
fn parse_btih(s: &str) -> Result<InfoHash, MagnetError> {
    let bad = || MagnetError::BadInfoHash(s.to_string());
    match s.len() {
        40 => InfoHash::from_hex(s).map_err(|_| bad()),
        32 => {
            let bytes = data_encoding::BASE32.decode(s.to_ascii_uppercase().as_bytes()).map_err(|_| bad())?;
            let arr: [u8; 20] = bytes.try_into().map_err(|_| bad())?;
            Ok(InfoHash(arr))
        }
        _ => Err(bad()),
    }
}

/// `host:port` or `[v6]:port` with a non-zero port.
fn valid_peer(peer: &str) -> bool {
    let Some((host, port)) = peer.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty() && !host.contains([':', '/', ' ', '[', ']'])
    };
    port_ok && host_ok
}

/// Expands `0,2,4-6` into indices, refusing more than [`MAX_SELECT_ONLY`] before allocating.
fn parse_select_only(s: &str) -> Result<Vec<u32>, MagnetError> {
    let bad = || MagnetError::BadSelectOnly(s.to_string());
    let mut ranges = Vec::new();
    let mut count: u64 = 0;
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (item, item),
        };
        let (a, b) = (a.parse::<u32>().map_err(|_| bad())?, b.parse::<u32>().map_err(|_| bad())?);
        if a > b {
            return Err(bad());
        }
        count += u64::from(b - a) + 1;
        if count > MAX_SELECT_ONLY as u64 {
            return Err(MagnetError::TooManySelected);
        }
        ranges.push(a..=b);
    }
    if ranges.is_empty() {
        return Err(bad());
    }
    Ok(ranges.into_iter().flatten().collect())
}

/// Sorted indices as `0,2,4-6`.
fn format_ranges(sorted: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut iter = sorted.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while let Some(next) = iter.next_if(|&n| Some(n) == end.checked_add(1)) {
            end = next;
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn parses_a_real_world_looking_magnet() {
        let uri = format!(
            "magnet:?xt=urn:btih:{}&dn=Big+Buck+Bunny%20%281080p%29&tr=udp%3A%2F%2F127.0.0.1%3A6969\
             &tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce&tr=udp%3A%2F%2F127.0.0.1%3A6969\
             &x.pe=127.0.0.1:51413&x.pe=%5B%3A%3A1%5D%3A6881&x.pe=nonsense&ws=http%3A%2F%2Fx%2F\
             &so=0,2,4-6",
            HEX.to_uppercase()
        );
        let m = Magnet::parse(&uri).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.display_name.as_deref(), Some("Big Buck Bunny (1080p)"));
        assert_eq!(m.trackers, vec!["udp://127.0.0.1:6969".to_string(), "http://127.0.0.1:6969/announce".to_string()]);
        assert_eq!(m.peers, vec!["127.0.0.1:51413".to_string(), "[::1]:6881".to_string()]);
        assert_eq!(m.select_only, Some(vec![0, 2, 4, 5, 6]));
        assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
        assert_eq!(m.to_string(), m.to_uri());
        assert!(m.to_uri().ends_with("&so=0,2,4-6"));
    }

    #[test]
    fn base32_hash_and_numbered_keys() {
        let hash = InfoHash::from_hex(HEX).unwrap();
        let b32 = data_encoding::BASE32.encode(&hash.0);
        assert_eq!(b32.len(), 32);
        let m = Magnet::parse(&format!("MAGNET:?xt.1=urn:BTIH:{}&tr.1=udp://a:1", b32.to_lowercase())).unwrap();
        assert_eq!(m.info_hash, hash);
        assert_eq!(m.trackers, vec!["udp://a:1".to_string()]);
        assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
        assert_eq!(m.to_uri(), format!("magnet:?xt=urn:btih:{HEX}&tr=udp%3A%2F%2Fa%3A1"));
    }

    #[test]
    fn hybrid_magnet_uses_btih_and_ignores_btmh() {
        let btmh = "1220".to_string() + &"ab".repeat(32);
        let m = Magnet::parse(&format!("magnet:?xt=urn:btmh:{btmh}&xt=urn:btih:{HEX}&dn=x")).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(Magnet::parse(&format!("magnet:?xt=urn:btmh:{btmh}&dn=x")), Err(MagnetError::V2Only));
    }

    #[test]
    fn refuses_bad_magnets() {
        use MagnetError as E;
        assert_eq!(Magnet::parse(""), Err(E::NotMagnet));
        assert_eq!(Magnet::parse("http://example.invalid/?xt=urn:btih:x"), Err(E::NotMagnet));
        assert_eq!(Magnet::parse("magnet:"), Err(E::NotMagnet));
        assert_eq!(Magnet::parse("magnet:?dn=x&tr=udp://a:1"), Err(E::MissingInfoHash));
        assert_eq!(Magnet::parse("magnet:?"), Err(E::MissingInfoHash));
        for bad in ["abc", &HEX[..39], &format!("{}g", &HEX[..39]), "ABCDEFGHIJKLMNOPQRSTUVWXYZ234561"] {
            assert!(matches!(Magnet::parse(&format!("magnet:?xt=urn:btih:{bad}")), Err(E::BadInfoHash(_))), "{bad}");
        }
        let other = "d".repeat(40);
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{other}")),
            Err(E::ConflictingInfoHashes)
        );
        // Multi-byte characters where the scheme should be must not panic on a char boundary.
        assert_eq!(Magnet::parse("magnét:?xt"), Err(E::NotMagnet));
    }

    #[test]
    fn select_only_is_bounded() {
        let base = format!("magnet:?xt=urn:btih:{HEX}&so=");
        for bad in ["", "a", "5-2", "1-", "-3", "1,,x", "4294967296"] {
            assert!(matches!(Magnet::parse(&format!("{base}{bad}")), Err(MagnetError::BadSelectOnly(_))), "{bad}");
        }
        assert_eq!(Magnet::parse(&format!("{base}0-4294967295")), Err(MagnetError::TooManySelected));
        assert_eq!(Magnet::parse(&format!("{base}0-99999&so=200000-200000")), Err(MagnetError::TooManySelected));
        let ok = Magnet::parse(&format!("{base}0-99999")).unwrap();
        assert_eq!(ok.select_only.as_ref().map(Vec::len), Some(100_000));
        assert_eq!(format_ranges(&[0, 1, 2, 5, 7, 8, u32::MAX - 1, u32::MAX]), "0-2,5,7-8,4294967294-4294967295");
        let m = Magnet::parse(&format!("{base}6,4-5,0,2,2")).unwrap();
        assert_eq!(m.select_only, Some(vec![0, 2, 4, 5, 6]));
    }
}
