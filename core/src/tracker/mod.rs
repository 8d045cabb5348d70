//! Trackers as sans-IO protocol machines.
//!
//! The runtime only does DNS and sockets. For an HTTP tracker it performs a GET of the URL
//! [`announce_url`] built and hands the body to [`parse_announce`]. For a UDP
//! tracker it resolves the host of [`udp::parse_udp_url`], sends the datagrams a
//! [`udp::UdpExchange`] produces and feeds back the ones it receives. [`TrackerList`]
//! decides, for one torrent, which tracker to announce to, when, and with which event.
//!
//! `announce` holds the types both protocols share: the announce request, its answer and the
//! scrape figures, plus the sanity limits every answer goes through.

pub(crate) mod announce;
mod http;
mod tiers;
pub mod udp;

pub use announce::{
    tracker_kind, AnnounceEvent, AnnounceParams, AnnounceResponse, ScrapeStats, TrackerKind, DEFAULT_INTERVAL,
    MAX_INTERVAL, MAX_PEERS_PER_RESPONSE, MIN_INTERVAL, MIN_MIN_INTERVAL,
};
// Crate-internal short paths; outside the crate these are `shoal_core::{TrackerError, TransportError}`
// and `tracker::udp::*`.
pub(crate) use announce::{TrackerError, TransportError};
pub(crate) use http::scrape_entry;
pub use http::{announce_url, parse_announce, parse_scrape, scrape_request_url, scrape_url};
pub use tiers::{TrackerIndex, TrackerList, TrackerState, TrackerStatus, BACKOFF_BASE, BACKOFF_MAX, MAX_TRACKERS};
pub(crate) use udp::{parse_udp_url, UdpConfig, UdpExchange, UdpOutcome};
