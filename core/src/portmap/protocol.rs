//! The names a mapping is described by: the transport protocol it forwards and the gateway
//! protocol that made it.

use std::fmt;

/// A transport protocol a mapping forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (peer connections).
    Tcp,
    /// UDP (the DHT, uTP).
    Udp,
}

impl Protocol {
    /// `TCP` or `UDP`, as UPnP writes it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which gateway protocol did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// UPnP Internet Gateway Device.
    Upnp,
    /// NAT-PMP.
    NatPmp,
    /// PCP, NAT-PMP's successor.
    Pcp,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Upnp => "UPnP",
            Via::NatPmp => "NAT-PMP",
            Via::Pcp => "PCP",
        })
    }
}
