//! What the mapper is told to do.

use std::net::Ipv4Addr;
use std::time::Duration;

/// What the mapper does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapConfig {
    /// Use UPnP IGD.
    pub upnp: bool,
    /// Use NAT-PMP (needs [`PortMapConfig::gateway`]).
    pub natpmp: bool,
    /// The default gateway's address, where NAT-PMP requests go.
    pub gateway: Option<Ipv4Addr>,
    /// The lease we ask for; mappings are renewed halfway.
    pub lease: Duration,
    /// The description shown in the router's UPnP table.
    pub description: String,
}

impl Default for PortMapConfig {
    fn default() -> Self {
        PortMapConfig {
            upnp: true,
            natpmp: true,
            gateway: None,
            // RFC 6886 §3.3's recommended lifetime; UPnP leases use the same.
            lease: Duration::from_secs(7200),
            description: "Shoal".into(),
        }
    }
}
