//! A NAT in front of one host, of the kind hole punching is for: endpoint-independent mapping
//! that keeps the host's ports (so the host's address outside is the one it has inside), and
//! address-and-port-dependent filtering (RFC 4787; a "port-restricted cone"). A datagram from
//! outside passes only from an endpoint the host sent a datagram to within the filter's
//! lifetime; an unsolicited connect from outside never passes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a filter entry lives after the host's last datagram to that endpoint: RFC 4787
/// REQ-5's least UDP mapping timer, two minutes.
pub const NAT_LIFETIME: Duration = Duration::from_secs(120);

/// One host's NAT: the endpoints it may hear from, each until when.
#[derive(Clone, Debug, Default)]
pub struct Nat {
    holes: BTreeMap<SocketAddr, Duration>,
}

impl Nat {
    /// The host sends a datagram to `to` at `now`: `to` may answer for [`NAT_LIFETIME`].
    pub fn outbound(&mut self, to: SocketAddr, now: Duration) {
        self.holes.insert(to, now + NAT_LIFETIME);
        // Forget what expired, so that the map holds only live entries.
        self.holes.retain(|_, until| *until > now);
    }

    /// Whether a datagram from `from` arriving at `now` reaches the host.
    pub fn admits(&self, from: SocketAddr, now: Duration) -> bool {
        self.holes.get(&from).is_some_and(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::{Nat, NAT_LIFETIME};

    #[test]
    fn only_the_endpoint_sent_to_gets_in_and_only_for_the_lifetime() {
        let a: SocketAddr = "10.0.0.1:6881".parse().expect("addr");
        let other_port: SocketAddr = "10.0.0.1:6882".parse().expect("addr");
        let other_host: SocketAddr = "10.0.0.2:6881".parse().expect("addr");
        let mut nat = Nat::default();
        assert!(!nat.admits(a, Duration::ZERO), "unsolicited");
        nat.outbound(a, Duration::from_secs(1));
        assert!(nat.admits(a, Duration::from_secs(2)));
        assert!(!nat.admits(other_port, Duration::from_secs(2)), "filtering is port-dependent");
        assert!(!nat.admits(other_host, Duration::from_secs(2)), "and address-dependent");
        assert!(!nat.admits(a, Duration::from_secs(1) + NAT_LIFETIME), "expired");
        nat.outbound(a, Duration::from_secs(100));
        assert!(nat.admits(a, Duration::from_secs(200)), "sending again keeps it open");
    }
}
