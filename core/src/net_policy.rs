//! Where Shoal may send packets: the one check that every outgoing connection, datagram and
//! host-name lookup passes (peers, HTTP and UDP trackers, web fetches, the DHT, Local Service
//! Discovery).
//!
//! The decision lives here, as a pure function of an address or a host name; the runtime asks
//! it about every *resolved* address right before `connect` or `send_to`, so a tracker named
//! by a host name, a redirect or a hostile peer list cannot slip past it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which destinations are allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetPolicy {
    /// Anywhere.
    #[default]
    Open,
    /// Loopback only (127.0.0.0/8, ::1): `SHOAL_LOCAL_ONLY=1`, the test suite's setting.
    /// Host names other than `localhost` are not looked up either, because the lookup itself
    /// would ask a name server that is usually off loopback.
    LocalOnly,
    /// Loopback, private (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7) and multicast:
    /// `SHOAL_LOCAL_ONLY=netns`, for a process that a test started inside network namespaces
    /// of its own, whose veth links carry private addresses and lead nowhere else. Host names
    /// are refused as in [`NetPolicy::LocalOnly`]; multicast may use any interface.
    Namespace,
}

/// A destination the policy refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// An address off loopback.
    Addr(SocketAddr),
    /// A host name that would need a DNS lookup.
    Host(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Addr(a) => write!(f, "refused by local-only mode: {a}"),
            Refused::Host(h) => write!(f, "refused by local-only mode: {h} (only localhost and IP addresses are used)"),
        }
    }
}

impl std::error::Error for Refused {}

/// How to turn a host name into addresses under the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// No lookup needed: these addresses (an IP literal, or `localhost` when local-only).
    Addrs(Vec<SocketAddr>),
    /// Ask the system resolver, then keep what [`NetPolicy::allows`] allows.
    Resolve,
    /// Refused without any lookup.
    Refused(Refused),
}

impl NetPolicy {
    /// The policy for `local_only` ([`crate::Config::local_only`]).
    pub fn new(local_only: bool) -> NetPolicy {
        if local_only {
            NetPolicy::LocalOnly
        } else {
            NetPolicy::Open
        }
    }

    /// Whether only loopback is allowed.
    pub fn is_local_only(self) -> bool {
        self == NetPolicy::LocalOnly
    }

    /// Whether anything is refused (local-only or namespace-only): public routers, LAN
    /// discovery and port mapping stay off unless a test asks for them.
    pub fn is_contained(self) -> bool {
        self != NetPolicy::Open
    }

    /// Whether a connection or datagram to `addr` is allowed.
    pub fn allows(self, addr: SocketAddr) -> bool {
        match self {
            NetPolicy::Open => true,
            // An IPv4-mapped loopback (::ffff:127.0.0.1) is loopback too on a dual-stack socket.
            NetPolicy::LocalOnly => addr.ip().to_canonical().is_loopback(),
            NetPolicy::Namespace => is_private(addr.ip().to_canonical()),
        }
    }

    /// [`NetPolicy::allows`] as a `Result`, with the error to report.
    pub fn check(self, addr: SocketAddr) -> Result<SocketAddr, Refused> {
        if self.allows(addr) {
            Ok(addr)
        } else {
            Err(Refused::Addr(addr))
        }
    }

    /// The allowed addresses among `addrs` (in their order); the first refused one if none is.
    pub fn filter(self, addrs: impl IntoIterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
        let mut refused = None;
        let mut kept = Vec::new();
        for a in addrs {
            if self.allows(a) {
                kept.push(a);
            } else {
                refused.get_or_insert(a);
            }
        }
        match refused {
            Some(a) if kept.is_empty() => Err(Refused::Addr(a)),
            _ => Ok(kept),
        }
    }

    /// How `host` (a name, an IP literal, or a bracketed IPv6 literal as URLs write it) is to
    /// be turned into addresses on `port`.
    pub fn lookup(self, host: &str, port: u16) -> Lookup {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return match self.check(SocketAddr::new(ip, port)) {
                Ok(a) => Lookup::Addrs(vec![a]),
                Err(r) => Lookup::Refused(r),
            };
        }
        match self {
            NetPolicy::Open => Lookup::Resolve,
            // RFC 6761: localhost names are loopback, answered without asking a name server.
            NetPolicy::LocalOnly | NetPolicy::Namespace if is_localhost(bare) => Lookup::Addrs(vec![
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
            ]),
            NetPolicy::LocalOnly | NetPolicy::Namespace => Lookup::Refused(Refused::Host(bare.to_string())),
        }
    }

    /// Whether multicast may be sent through the interface with address `interface`
    /// (Local Service Discovery): local-only allows it on the loopback interface alone, from
    /// which it cannot leave the host; namespace-only on loopback and private interfaces.
    pub fn allows_multicast_via(self, interface: Ipv4Addr) -> bool {
        match self {
            NetPolicy::Open => true,
            NetPolicy::LocalOnly => interface.is_loopback(),
            NetPolicy::Namespace => interface.is_unspecified() || is_private(interface.into()),
        }
    }
}

/// Loopback, RFC 1918, unique-local (fc00::/7) or multicast: what a test's namespaces use
/// (multicast for LAN discovery and SSDP, which stays on the namespace's links).
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00 || v6.is_multicast(),
    }
}

/// `localhost` or a name under it (RFC 6761 §6.3), case-insensitive, trailing dot allowed.
fn is_localhost(host: &str) -> bool {
    let h = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn local_only_allows_loopback_alone() {
        let p = NetPolicy::LocalOnly;
        for ok in ["127.0.0.1:80", "127.9.8.7:1", "[::1]:6969", "[::ffff:127.0.0.1]:1"] {
            assert!(p.allows(a(ok)), "{ok}");
        }
        for no in ["93.184.216.34:80", "0.0.0.0:1", "[::]:1", "[2001:db8::1]:1", "10.0.0.1:53", "239.192.152.143:6771"]
        {
            assert!(!p.allows(a(no)), "{no}");
        }
        assert!(NetPolicy::Open.allows(a("93.184.216.34:80")));
    }

    #[test]
    fn namespace_allows_private_and_multicast_but_no_public_address_or_name() {
        let p = NetPolicy::Namespace;
        for ok in ["127.0.0.1:80", "10.77.1.2:6881", "192.168.1.1:5351", "239.255.255.250:1900", "[fd00::2]:1"] {
            assert!(p.allows(a(ok)), "{ok}");
        }
        for no in ["93.184.216.34:80", "100.64.0.1:1", "[2001:db8::1]:1", "0.0.0.0:1"] {
            assert!(!p.allows(a(no)), "{no}");
        }
        assert_eq!(
            p.lookup("router.bittorrent.com", 6881),
            Lookup::Refused(Refused::Host("router.bittorrent.com".into()))
        );
        assert!(p.is_contained() && !p.is_local_only() && NetPolicy::LocalOnly.is_contained());
        assert!(p.allows_multicast_via(Ipv4Addr::new(10, 77, 1, 2)));
        assert!(!p.allows_multicast_via(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn refusals_name_the_target() {
        let p = NetPolicy::LocalOnly;
        assert_eq!(
            p.check(a("93.184.216.34:80")).unwrap_err().to_string(),
            "refused by local-only mode: 93.184.216.34:80"
        );
        assert_eq!(
            p.filter([a("192.0.2.1:1"), a("127.0.0.1:2")]).unwrap(),
            vec![a("127.0.0.1:2")],
            "the allowed ones are kept"
        );
        assert_eq!(p.filter([a("192.0.2.1:1")]), Err(Refused::Addr(a("192.0.2.1:1"))));
    }

    #[test]
    fn lookups_under_each_policy() {
        let p = NetPolicy::LocalOnly;
        assert_eq!(p.lookup("127.0.0.1", 80), Lookup::Addrs(vec![a("127.0.0.1:80")]));
        assert_eq!(p.lookup("[::1]", 80), Lookup::Addrs(vec![a("[::1]:80")]));
        assert_eq!(p.lookup("[2001:db8::1]", 80), Lookup::Refused(Refused::Addr(a("[2001:db8::1]:80"))));
        assert_eq!(p.lookup("LocalHost.", 8), Lookup::Addrs(vec![a("127.0.0.1:8"), a("[::1]:8")]));
        assert_eq!(p.lookup("tracker.example.org", 8), Lookup::Refused(Refused::Host("tracker.example.org".into())));
        assert_eq!(NetPolicy::Open.lookup("tracker.example.org", 8), Lookup::Resolve);
        assert_eq!(NetPolicy::Open.lookup("[2001:db8::1]", 8), Lookup::Addrs(vec![a("[2001:db8::1]:8")]));
    }

    #[test]
    fn multicast_only_through_loopback_when_local_only() {
        assert!(NetPolicy::LocalOnly.allows_multicast_via(Ipv4Addr::LOCALHOST));
        assert!(!NetPolicy::LocalOnly.allows_multicast_via(Ipv4Addr::UNSPECIFIED));
        assert!(NetPolicy::Open.allows_multicast_via(Ipv4Addr::UNSPECIFIED));
    }
}
