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
    /// Use PCP (RFC 6887) first, falling back to NAT-PMP when the gateway does not speak it
    /// (needs [`PortMapConfig::gateway`] and [`PortMapConfig::client_ip`]).
    pub pcp: bool,
    /// The default gateway's address, where NAT-PMP and PCP requests go.
    pub gateway: Option<Ipv4Addr>,
    /// Our address toward the gateway, which PCP requests carry.
    pub client_ip: Option<Ipv4Addr>,
    /// PCP's mapping nonce: random, drawn by the runtime (the core draws no randomness).
    pub pcp_nonce: [u8; 12],
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
            pcp: true,
            gateway: None,
            client_ip: None,
            pcp_nonce: [0; 12],
            // RFC 6886 §3.3's recommended lifetime; UPnP leases use the same.
            lease: Duration::from_secs(7200),
            description: "Shoal".into(),
        }
    }
}
