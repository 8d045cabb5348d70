//! Trackers as sans-IO protocol machines.
//!
//! The runtime only does DNS and sockets. For an HTTP tracker it performs a GET of the URL
//! [`http::announce_url`] built and hands the body to [`http::parse_announce`]. For a UDP
//! tracker it resolves the host of [`udp::parse_udp_url`], sends the datagrams a
//! [`udp::UdpExchange`] produces and feeds back the ones it receives. [`tiers::TrackerList`]
//! decides, for one torrent, which tracker to announce to, when, and with which event.
//!
//! [`announce`] holds the types both protocols share: the announce request, its answer and the
//! scrape figures, plus the sanity limits every answer goes through.

pub mod announce;
pub mod http;
pub mod tiers;
pub mod udp;

pub use announce::{
    tracker_kind, AnnounceEvent, AnnounceParams, AnnounceResponse, ScrapeStats, TrackerError, TrackerKind,
    TransportError, DEFAULT_INTERVAL, MAX_INTERVAL, MAX_PEERS_PER_RESPONSE, MIN_INTERVAL, MIN_MIN_INTERVAL,
};
pub use http::{announce_url, parse_announce, parse_scrape, scrape_request_url, scrape_url};
pub use tiers::{TrackerIndex, TrackerList, TrackerState, TrackerStatus};
pub use udp::{parse_udp_url, UdpConfig, UdpExchange, UdpOutcome};
