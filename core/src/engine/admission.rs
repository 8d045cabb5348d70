//! Who gets a connection slot: the limits a descriptor budget allows, the per-address limit,
//! and which idle peer makes room for a new one when a torrent is full.
//!
//! Slots are what an attacker attacks: sockets that never send a handshake hold the
//! pending-handshake slots, handshaked peers that never want anything hold a torrent's peer
//! slots. Neither may lock honest peers out. A full pending table drops its oldest entry (an
//! honest peer sends its handshake within a round trip of connecting, so the oldest is the
//! likeliest squatter); a full torrent replaces its least useful peer, as libtorrent's and
//! qBittorrent's connection replacement do. Peers that send us data or want ours are never
//! replaced; among the others the longest connected goes first, so a newcomer has the most
//! time to show it is useful before it would be chosen.

use std::net::{IpAddr, Ipv6Addr};

use crate::types::{ConnId, Instant};

/// Connection limits that fit a budget of file descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Peer connections over all torrents ([`super::Config::max_connections`]).
    pub max_connections: usize,
    /// Incoming connections whose handshake has not arrived
    /// ([`super::Config::max_pending_handshakes`]).
    pub max_pending_handshakes: usize,
}

/// Descriptors kept for everything but peers before the split: the epoll and event
/// descriptors, stdio, listeners, DHT and LSD sockets, tracker exchanges (libtorrent keeps 20).
const RESERVED_DESCRIPTORS: u64 = 20;

/// The most descriptors a Linux process can have by default (`fs.nr_open`): a budget above it
/// (`RLIM_INFINITY`) is taken as this.
pub const MAX_DESCRIPTORS: u64 = 1 << 20;

/// The descriptor budget [`super::Config::default`] assumes: the usual soft `RLIMIT_NOFILE`.
pub const DEFAULT_DESCRIPTORS: u64 = 1024;

impl ConnectionLimits {
    /// The limits for a process that may hold `budget` descriptors (its soft `RLIMIT_NOFILE`).
    ///
    /// After a small reserve, 80% of the descriptors go to peers and 20% to torrent files and
    /// the rest (libtorrent's split). Of the peers' share a quarter holds incoming connections
    /// still handshaking: an honest one leaves it within a round trip, so it needs fewer
    /// slots than established peers, but enough that a flood of silent sockets takes many
    /// arrivals to push an honest one out before its handshake is read.
    pub fn for_descriptors(budget: u64) -> ConnectionLimits {
        let budget = budget.min(MAX_DESCRIPTORS);
        ConnectionLimits::for_peers((budget.saturating_sub(RESERVED_DESCRIPTORS) * 8 / 10) as usize)
    }

    /// The limits when `peers` descriptors are for peer connections alone (a host that has
    /// already set aside what its files and other sockets need): a quarter for handshakes in
    /// progress, the rest for established peers.
    pub fn for_peers(peers: usize) -> ConnectionLimits {
        let peers = peers.max(5);
        let max_pending_handshakes = (peers / 4).max(1);
        ConnectionLimits { max_connections: (peers - max_pending_handshakes).max(1), max_pending_handshakes }
    }
}

/// What the per-address limit counts connections by: an IPv4 address, or an IPv6 /64 (one
/// host's usual allocation, so a host cannot dodge the limit by cycling its addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum AddrKey {
    /// An IPv4 address (or an IPv4-mapped IPv6 one).
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6([u8; 8]),
}

impl AddrKey {
    /// The key of `ip`; `None` for loopback, which the per-address limit leaves alone: a local
    /// process can bind any of the 16 million addresses of 127/8 and any number of ports, so a
    /// limit there would only stop honest local peers (and every loopback test's swarm).
    pub(super) fn of(ip: IpAddr) -> Option<AddrKey> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        if ip.is_loopback() {
            return None;
        }
        Some(match ip {
            IpAddr::V4(v4) => AddrKey::V4(v4.octets()),
            IpAddr::V6(v6) => AddrKey::V6(prefix64(v6)),
        })
    }
}

fn prefix64(ip: Ipv6Addr) -> [u8; 8] {
    let o = ip.octets();
    [o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]]
}

/// How much a connected peer does for us, least first: the order in which peers make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Usefulness {
    /// Neither side wants anything from the other (a fellow seed, or a squatter).
    Idle,
    /// We want pieces it has, but it chokes us and sends nothing.
    Choking,
    /// It wants our pieces (interested), served or waiting for an upload slot.
    WantsOurs,
    /// It sends us data: it unchokes us while we want some, blocks arrived lately, or it
    /// serves the metadata we are fetching.
    GivesUs,
}

impl Usefulness {
    /// Whether a peer this useful may be closed to admit another.
    pub(super) fn replaceable(self) -> bool {
        self <= Usefulness::Choking
    }
}

/// One established peer as replacement sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Occupant {
    /// Its connection.
    pub conn: ConnId,
    /// What it does for us.
    pub usefulness: Usefulness,
    /// When its handshake completed.
    pub since: Instant,
}

/// The peer to close to make room for a newcomer: the least useful replaceable one, the longest
/// connected among equals; `None` if every peer is worth keeping.
pub(crate) fn pick_replacement(occupants: impl IntoIterator<Item = Occupant>) -> Option<ConnId> {
    occupants
        .into_iter()
        .filter(|o| o.usefulness.replaceable())
        .min_by_key(|o| (o.usefulness, o.since, o.conn))
        .map(|o| o.conn)
}

#[cfg(test)]
mod tests {
    use super::{
        pick_replacement, AddrKey, ConnId, ConnectionLimits, Instant, IpAddr, Occupant, Usefulness, MAX_DESCRIPTORS,
    };
    use std::time::Duration;

    fn at(secs: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(secs)
    }

    fn occ(conn: u64, usefulness: Usefulness, since: u64) -> Occupant {
        Occupant { conn: ConnId(conn), usefulness, since: at(since) }
    }

    #[test]
    fn idle_peers_go_first_longest_connected_first() {
        let peers = [
            occ(1, Usefulness::Choking, 0),
            occ(2, Usefulness::Idle, 30),
            occ(3, Usefulness::Idle, 10),
            occ(4, Usefulness::GivesUs, 0),
            occ(5, Usefulness::WantsOurs, 0),
        ];
        assert_eq!(pick_replacement(peers), Some(ConnId(3)), "the oldest idle peer");
        assert_eq!(pick_replacement(peers.into_iter().filter(|o| o.conn != ConnId(3))), Some(ConnId(2)));
        let no_idle = [occ(1, Usefulness::Choking, 5), occ(6, Usefulness::Choking, 2), occ(4, Usefulness::GivesUs, 0)];
        assert_eq!(pick_replacement(no_idle), Some(ConnId(6)), "then peers that only choke us, oldest first");
    }

    #[test]
    fn peers_that_give_us_data_or_want_ours_are_never_replaced() {
        let peers = [occ(1, Usefulness::GivesUs, 0), occ(2, Usefulness::WantsOurs, 0)];
        assert_eq!(pick_replacement(peers), None);
        assert_eq!(pick_replacement([]), None);
    }

    #[test]
    fn equal_peers_are_told_apart_by_connection_id() {
        let peers = [occ(9, Usefulness::Idle, 3), occ(7, Usefulness::Idle, 3)];
        assert_eq!(pick_replacement(peers), Some(ConnId(7)), "a deterministic choice");
    }

    #[test]
    fn addresses_are_counted_by_ipv4_address_or_ipv6_slash_64_and_loopback_is_not() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert_eq!(AddrKey::of(ip("192.0.2.7")), Some(AddrKey::V4([192, 0, 2, 7])));
        assert_eq!(AddrKey::of(ip("::ffff:192.0.2.7")), AddrKey::of(ip("192.0.2.7")), "mapped is the same host");
        assert_eq!(AddrKey::of(ip("2001:db8:1:2::1")), AddrKey::of(ip("2001:db8:1:2:ffff::9")), "same /64");
        assert_ne!(AddrKey::of(ip("2001:db8:1:2::1")), AddrKey::of(ip("2001:db8:1:3::1")));
        assert_eq!(AddrKey::of(ip("127.0.0.1")), None);
        assert_eq!(AddrKey::of(ip("127.45.6.7")), None);
        assert_eq!(AddrKey::of(ip("::1")), None);
    }

    #[test]
    fn limits_follow_the_descriptor_budget() {
        let l = ConnectionLimits::for_descriptors(1024);
        // (1024 - 20) * 0.8 = 803 descriptors for peers, a quarter of them pending.
        assert_eq!(l, ConnectionLimits { max_connections: 603, max_pending_handshakes: 200 });
        let big = ConnectionLimits::for_descriptors(65536);
        assert!(big.max_connections > 10 * l.max_connections / 2 && big.max_pending_handshakes > 4000);
        let total = big.max_connections + big.max_pending_handshakes;
        assert!(total as u64 <= 65536 * 8 / 10, "peers never take more than 80% of the budget");
        assert_eq!(ConnectionLimits::for_descriptors(u64::MAX), ConnectionLimits::for_descriptors(MAX_DESCRIPTORS));
        let tiny = ConnectionLimits::for_descriptors(0);
        assert!(tiny.max_connections >= 1 && tiny.max_pending_handshakes >= 1, "never zero: {tiny:?}");
    }
}
