//! Port mapping: asks the LAN's gateway to forward our listen port, by UPnP IGD and by PCP
//! (RFC 6887) or its predecessor NAT-PMP (RFC 6886), and learns the external address peers
//! reach us at.
//!
//! Sans-IO like the rest of the core. [`PortMapper`] decides what to send and when (discovery,
//! mapping, renewal halfway to expiry, retries with backoff, removal at shutdown); the runtime
//! carries its [`PortMapOutput`]s (a PCP or NAT-PMP datagram to the gateway, an SSDP search to the
//! multicast group, an HTTP request to the device) and hands back what comes in. The codecs
//! ([`pcp`], [`natpmp`], [`ssdp`], [`igd`]) read every answer strictly: routers are untrusted, and one
//! that claims a private, loopback or unspecified external address is reported, not believed
//! ([`usable_external_ip`]).

mod address;
mod config;
mod cx;
mod epoch;
pub mod igd;
mod mapper;
pub mod natpmp;
mod natpmp_client;
mod output;
pub mod pcp;
mod pcp_client;
#[cfg(test)]
mod pcp_mapper_tests;
mod protocol;
mod slot;
pub mod ssdp;
mod state;
#[cfg(test)]
mod tests;
mod upnp_client;
mod url;

pub use address::usable_external_ip;
pub use config::PortMapConfig;
pub use mapper::PortMapper;
pub use output::{HttpAnswer, HttpRequest, PortMapEvent, PortMapOutput};
pub use protocol::{Protocol, Via};
pub use state::{MappingState, MappingStatus};
