//! What the mapper asks of the runtime and tells the application.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::protocol::{Protocol, Via};

/// An HTTP request for the runtime: a GET (no body) or a SOAP POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Answer with [`super::PortMapper::handle_http`] and this id.
    pub id: u64,
    /// `http://ip:port/path`.
    pub url: String,
    /// For a POST: the `SOAPAction` header and the XML body.
    pub soap: Option<(String, String)>,
}

/// What the runtime got back for an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The body, read up to a bound ([`super::igd::MAX_DESCRIPTION`] is enough for everything).
    pub body: Vec<u8>,
    /// Our address on the connection (the LAN address the gateway forwards to).
    pub local_ip: Option<Ipv4Addr>,
}

/// What the mapper asks of the runtime, or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMapOutput {
    /// Send `data` (NAT-PMP or PCP) to the gateway's port 5351 from the NAT-PMP socket;
    /// answers come back through [`super::PortMapper::handle_natpmp`].
    NatPmp {
        /// The gateway and port 5351.
        to: SocketAddrV4,
        /// The request.
        data: Vec<u8>,
    },
    /// Send `data` to the SSDP group ([`super::ssdp::GROUP`]) from the SSDP socket; answers come back
    /// through [`super::PortMapper::handle_ssdp`].
    Ssdp {
        /// The M-SEARCH.
        data: Vec<u8>,
    },
    /// Make this HTTP request; answer with [`super::PortMapper::handle_http`].
    Http(HttpRequest),
    /// Tell the application.
    Event(PortMapEvent),
}

/// What happened, for logs and the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMapEvent {
    /// A mapping was made (`renewal`: it existed and its lease was extended).
    Mapped {
        /// The gateway protocol.
        via: Via,
        /// TCP or UDP.
        protocol: Protocol,
        /// Our port.
        internal_port: u16,
        /// The port open on the gateway.
        external_port: u16,
        /// Whether this renewed an existing mapping.
        renewal: bool,
    },
    /// A mapping (or the discovery before it) failed; it is retried after a backoff.
    Failed {
        /// The gateway protocol.
        via: Via,
        /// TCP or UDP.
        protocol: Protocol,
        /// Our port.
        internal_port: u16,
        /// Why.
        error: String,
    },
    /// A mapping was removed at shutdown (or could not be removed: `error`).
    Removed {
        /// The gateway protocol.
        via: Via,
        /// TCP or UDP.
        protocol: Protocol,
        /// Our port.
        internal_port: u16,
        /// Why the gateway did not confirm, if it did not.
        error: Option<String>,
    },
    /// The gateway told its external address; `usable` is false for an address no peer could
    /// reach (see [`usable_external_ip`]), which is then not used.
    ExternalIp {
        /// The gateway protocol.
        via: Via,
        /// What the gateway said.
        ip: Ipv4Addr,
        /// Whether we use it.
        usable: bool,
    },
    /// The gateway does not speak `via` (PCP); `fallback` takes over, if on.
    Unsupported {
        /// The gateway protocol refused.
        via: Via,
        /// The one used instead.
        fallback: Option<Via>,
    },
    /// The gateway's address could not be learned.
    ExternalIpFailed {
        /// The gateway protocol.
        via: Via,
        /// Why.
        error: String,
    },
}
