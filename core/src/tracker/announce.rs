//! What both tracker protocols share: the announce request, its answer and the scrape
//! figures, plus the sanity limits every answer goes through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::types::{InfoHash, PeerId};

/// The shortest re-announce interval we accept; shorter values from a tracker are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// The longest re-announce interval we accept; longer values are lowered to it.
pub const MAX_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// The interval used when an HTTP answer has none (BEP 3 makes it mandatory, some omit it).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// The smallest `min interval` we accept: a forced re-announce is never sooner than this.
pub const MIN_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// At most this many peers are taken from one answer; the rest are dropped.
pub const MAX_PEERS_PER_RESPONSE: usize = 2000;

/// Why an announce or scrape failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    /// The tracker answered with a `failure reason` (HTTP) or an error packet (UDP).
    #[error("tracker refused: {0}")]
    Failure(String),
    /// The body is not valid bencode.
    #[error("invalid bencode from tracker: {0}")]
    Bencode(String),
    /// The body is well-formed but does not carry what the protocol says it must.
    #[error("malformed tracker response: {0}")]
    Malformed(&'static str),
    /// The tracker URL uses a scheme we cannot speak (e.g. `wss://`).
    #[error("unsupported tracker scheme: {0}")]
    UnsupportedScheme(String),
    /// The tracker URL cannot be understood.
    #[error("invalid tracker URL: {0}")]
    InvalidUrl(String),
    /// The tracker did not answer in time (UDP retransmissions exhausted).
    #[error("tracker timed out")]
    Timeout,
    /// The runtime could not reach the tracker (DNS, connect, HTTP status); it says why.
    #[error(transparent)]
    Unreachable(#[from] TransportError),
    /// The URL cannot be announced to over either protocol (a `udp://` URL without a port, a
    /// scheme spelled in capitals); why is the source.
    #[error("unsupported tracker URL")]
    UnusableUrl(#[source] Box<TrackerError>),
}

/// Why the runtime has no answer to an [`Output::Http`](crate::Output::Http) request or a
/// UDP tracker exchange ([`Input::Http`](crate::Input::Http),
/// [`Input::Exchange`](crate::Input::Exchange)). Its text is the runtime's.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The server answered with an error status and an empty body (a body is passed on
    /// whatever the status: trackers put their `failure reason` there).
    #[error("HTTP {code} {reason}")]
    HttpStatus {
        /// The status code.
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The request did not complete in time; the runtime's words.
    #[error("{0}")]
    TimedOut(String),
    /// Anything else (a name that does not resolve, an address the network policy refuses, a
    /// refused connection, a failed read); the runtime's words.
    #[error("{0}")]
    Failed(String),
}

/// The `event` of an announce (BEP 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AnnounceEvent {
    /// A regular re-announce.
    #[default]
    None,
    /// The first announce to this tracker.
    Started,
    /// The download finished during this session.
    Completed,
    /// We leave the swarm.
    Stopped,
}

/// Everything one announce tells the tracker; the same for HTTP and UDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceParams {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Our listening port (or the one a port mapping opened).
    pub port: u16,
    /// Our address as peers should dial it, when we know it better than the tracker (a port
    /// mapping's external address); `None` lets the tracker use the sender's.
    pub ip: Option<std::net::IpAddr>,
    /// Payload bytes uploaded since `started`.
    pub uploaded: u64,
    /// Payload bytes downloaded since `started`.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// Which event this announce reports.
    pub event: AnnounceEvent,
    /// How many peers we want; `u32::MAX` asks for the tracker's default (UDP `-1`).
    pub num_want: u32,
    /// A random per-session key that lets the tracker recognise us across IP changes.
    pub key: u32,
    /// The `tracker id` an earlier answer of this tracker gave us, echoed back.
    pub tracker_id: Option<String>,
    /// Our global IPv6 address (BEP 7 `ipv6=`, HTTP only): a tracker reached over IPv4 can
    /// still hand it to peers that speak IPv6.
    pub ipv6: Option<Ipv6Addr>,
}

/// A tracker's answer to an announce, after sanity limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// When to announce again, clamped to [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
    pub interval: Duration,
    /// How soon a forced announce may come, at least [`MIN_MIN_INTERVAL`] and at most `interval`.
    pub min_interval: Option<Duration>,
    /// Peers, at most [`MAX_PEERS_PER_RESPONSE`], none with port 0 or an unspecified address.
    pub peers: Vec<SocketAddr>,
    /// Seeders in the swarm, if the tracker said.
    pub complete: Option<u32>,
    /// Leechers in the swarm, if the tracker said.
    pub incomplete: Option<u32>,
    /// An id to echo in later announces to this tracker.
    pub tracker_id: Option<String>,
    /// A `warning message` to show the user; the announce still succeeded.
    pub warning: Option<String>,
}

/// One torrent's swarm figures from a scrape (BEP 48, BEP 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    /// Completed downloads the tracker has counted.
    pub downloaded: u32,
}

/// The protocol a tracker URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackerKind {
    /// `http://` or `https://`: a GET per announce.
    Http,
    /// `udp://`: the BEP 15 datagram protocol.
    Udp,
}

/// Which protocol `url` speaks, or why we cannot speak it.
pub fn tracker_kind(url: &str) -> Result<TrackerKind, TrackerError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(TrackerError::InvalidUrl(url.to_owned()));
    };
    if rest.is_empty() {
        return Err(TrackerError::InvalidUrl(url.to_owned()));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => Ok(TrackerKind::Http),
        "udp" => Ok(TrackerKind::Udp),
        _ => Err(TrackerError::UnsupportedScheme(scheme.to_owned())),
    }
}

/// Clamps a tracker's interval into the range we are willing to follow.
pub(super) fn clamp_interval(interval: Duration) -> Duration {
    interval.clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// Clamps a tracker's `min interval` so that it is sane and never longer than `interval`.
pub(super) fn clamp_min_interval(min: Duration, interval: Duration) -> Duration {
    min.clamp(MIN_MIN_INTERVAL, interval.max(MIN_MIN_INTERVAL))
}

/// Whether a peer address from a tracker is worth handing to the engine.
pub(super) fn usable_peer(addr: &SocketAddr) -> bool {
    addr.port() != 0 && !addr.ip().is_unspecified()
}

/// Appends `addr` to `peers` if it is usable and the cap is not reached.
pub(super) fn push_peer(peers: &mut Vec<SocketAddr>, addr: SocketAddr) {
    if peers.len() < MAX_PEERS_PER_RESPONSE && usable_peer(&addr) {
        peers.push(addr);
    }
}

/// Reads BEP 23 compact IPv4 peers (6 bytes each), exactly as written.
pub(super) fn compact_v4(bytes: &[u8]) -> Result<impl Iterator<Item = SocketAddr> + '_, TrackerError> {
    if !bytes.chunks_exact(6).remainder().is_empty() {
        return Err(TrackerError::Malformed("compact peer list is not a multiple of 6 bytes"));
    }
    Ok(bytes.chunks_exact(6).map(|e| {
        let ip = Ipv4Addr::new(e[0], e[1], e[2], e[3]);
        SocketAddr::new(ip.into(), u16::from_be_bytes([e[4], e[5]]))
    }))
}

/// Reads BEP 7 compact IPv6 peers (18 bytes each), exactly as written.
pub(super) fn compact_v6(bytes: &[u8]) -> Result<impl Iterator<Item = SocketAddr> + '_, TrackerError> {
    if !bytes.chunks_exact(18).remainder().is_empty() {
        return Err(TrackerError::Malformed("compact IPv6 peer list is not a multiple of 18 bytes"));
    }
    Ok(bytes.chunks_exact(18).map(|e| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&e[..16]);
        SocketAddr::new(Ipv6Addr::from(octets).into(), u16::from_be_bytes([e[16], e[17]]))
    }))
}

/// Writes one peer in compact form: 6 bytes for IPv4, 18 for IPv6.
pub(super) fn write_compact(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_urls() {
        assert_eq!(tracker_kind("http://t.example/announce"), Ok(TrackerKind::Http));
        assert_eq!(tracker_kind("HTTPS://t.example/announce"), Ok(TrackerKind::Http));
        assert_eq!(tracker_kind("udp://t.example:6969"), Ok(TrackerKind::Udp));
        assert_eq!(tracker_kind("wss://t.example"), Err(TrackerError::UnsupportedScheme("wss".into())));
        assert!(matches!(tracker_kind("no scheme"), Err(TrackerError::InvalidUrl(_))));
        assert!(matches!(tracker_kind("udp://"), Err(TrackerError::InvalidUrl(_))));
    }

    #[test]
    fn intervals_are_clamped() {
        assert_eq!(clamp_interval(Duration::ZERO), MIN_INTERVAL);
        assert_eq!(clamp_interval(Duration::from_secs(u32::MAX as u64)), MAX_INTERVAL);
        assert_eq!(clamp_interval(Duration::from_secs(1800)), Duration::from_secs(1800));
        let i = Duration::from_secs(600);
        assert_eq!(clamp_min_interval(Duration::from_secs(1), i), MIN_MIN_INTERVAL);
        assert_eq!(clamp_min_interval(Duration::from_secs(9000), i), i);
    }

    #[test]
    fn compact_peers_skip_port_zero_and_unspecified() {
        let mut peers = Vec::new();
        let bytes = [1, 2, 3, 4, 0x1a, 0xe1, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 1];
        for addr in compact_v4(&bytes).unwrap() {
            push_peer(&mut peers, addr);
        }
        assert_eq!(peers, vec!["1.2.3.4:6881".parse().unwrap()]);
        assert!(compact_v4(&bytes[..5]).is_err());
        assert!(compact_v6(&bytes[..17]).is_err());
    }
}
