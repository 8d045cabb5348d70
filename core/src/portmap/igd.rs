//! UPnP Internet Gateway Device: the device description (which service maps ports, and its
//! control URL), the SOAP requests of the WANIPConnection / WANPPPConnection services we use,
//! and the reading of their answers and faults.

use std::net::Ipv4Addr;

use super::protocol::Protocol;
use super::url::Url;

/// Larger descriptions are not read (miniupnpd's is about 4 KiB; routers with many services
/// stay well under this).
pub const MAX_DESCRIPTION: usize = 64 * 1024;
/// Larger SOAP answers are not read (ours are a few hundred bytes).
pub const MAX_ANSWER: usize = 16 * 1024;
/// XML nodes parsed at most in one document, so a deep or wide document cannot cost much.
const MAX_NODES: u32 = 4096;
/// Element nesting allowed (a description nests about ten deep); checked before parsing, as
/// the parser's stack grows with the depth.
const MAX_DEPTH: usize = 64;
/// UPnP error 725: the gateway only takes mappings without a lease (IGD:1 routers).
pub const ONLY_PERMANENT_LEASES: u16 = 725;
/// UPnP error 718: the external port is mapped already, to another client (or protocol).
pub const CONFLICT_IN_MAPPING_ENTRY: u16 = 718;

/// The service types that map ports, in the order we prefer them.
const SERVICES: [&str; 3] = [
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/// The service of a gateway we talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its type (one of the WANIPConnection/WANPPPConnection versions).
    pub service_type: String,
    /// Where its SOAP actions are posted.
    pub control_url: String,
}

/// Why a description or an answer is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgdError {
    /// Over the size limit.
    #[error("{0} bytes is over the limit")]
    TooLarge(usize),
    /// Not well-formed XML (or too many nodes).
    #[error("malformed XML: {0}")]
    Xml(String),
    /// The device has no WANIPConnection or WANPPPConnection service.
    #[error("no WANIPConnection or WANPPPConnection service")]
    NoService,
    /// A control URL that is not `http://` to an IP address.
    #[error("unusable control URL {0:?}")]
    ControlUrl(String),
    /// The gateway answered with a UPnP error (a SOAP fault).
    #[error("UPnP error {code} {description}")]
    Upnp {
        /// The `errorCode` (718 conflict, 725 only permanent leases, ...).
        code: u16,
        /// The `errorDescription`, shortened.
        description: String,
    },
    /// An HTTP status other than 200 without a UPnP fault.
    #[error("HTTP status {0}")]
    Status(u16),
    /// A 200 answer without the expected element.
    #[error("answer lacks {0}")]
    Missing(&'static str),
}

fn document(body: &[u8], limit: usize) -> Result<(String, roxmltree::ParsingOptions), IgdError> {
    if body.len() > limit {
        return Err(IgdError::TooLarge(body.len()));
    }
    if depth(body) > MAX_DEPTH {
        return Err(IgdError::Xml(format!("nested over {MAX_DEPTH} deep")));
    }
    let text = String::from_utf8_lossy(body).into_owned();
    let opt = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES };
    Ok((text, opt))
}

/// The deepest element nesting of `body`, counted from its tags alone (an over-estimate when
/// an attribute value holds `>`, which is fine for a limit).
fn depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut rest = body;
    while let Some(i) = rest.iter().position(|&b| b == b'<') {
        rest = &rest[i + 1..];
        let end = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
        match rest.first() {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'?' | b'!') | None => {}
            Some(_) if end > 0 && rest[end - 1] == b'/' => {}
            Some(_) => {
                depth += 1;
                deepest = deepest.max(depth);
            }
        }
        rest = &rest[end.min(rest.len())..];
    }
    deepest
}

/// The port-mapping service of the description at `location` (whose URL resolves relative
/// control URLs, with `URLBase` if the document has one).
pub fn parse_description(location: &str, body: &[u8]) -> Result<Service, IgdError> {
    let (text, opt) = document(body, MAX_DESCRIPTION)?;
    let doc = roxmltree::Document::parse_with_options(&text, opt).map_err(|e| IgdError::Xml(e.to_string()))?;
    let child_text = |n: roxmltree::Node<'_, '_>, name: &str| {
        n.children().find(|c| c.tag_name().name() == name).and_then(|c| c.text()).map(str::trim).map(str::to_string)
    };
    let base = doc
        .root_element()
        .children()
        .find(|c| c.tag_name().name() == "URLBase")
        .and_then(|c| c.text())
        .and_then(|t| Url::parse(t.trim()))
        .or_else(|| Url::parse(location))
        .ok_or_else(|| IgdError::ControlUrl(location.chars().take(100).collect()))?;
    let services: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "service")
        .filter_map(|n| Some((child_text(n, "serviceType")?, child_text(n, "controlURL")?)))
        .collect();
    for wanted in SERVICES {
        if let Some((t, control)) = services.iter().find(|(t, _)| t == wanted) {
            let url = base.join(control).ok_or_else(|| IgdError::ControlUrl(control.chars().take(100).collect()))?;
            return Ok(Service { service_type: t.clone(), control_url: url.to_string() });
        }
    }
    Err(IgdError::NoService)
}

/// A SOAP action on the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask for the external address.
    GetExternalIpAddress,
    /// Map `external_port` to `client:internal_port` for `lease_secs` (0: no lease).
    AddPortMapping {
        /// TCP or UDP.
        protocol: Protocol,
        /// The port opened on the gateway.
        external_port: u16,
        /// Our port.
        internal_port: u16,
        /// Our LAN address, as the gateway sees it.
        client: Ipv4Addr,
        /// Seconds; 0 asks for a permanent mapping.
        lease_secs: u32,
        /// Shown in the router's table.
        description: String,
    },
    /// Remove the mapping of `external_port`.
    DeletePortMapping {
        /// TCP or UDP.
        protocol: Protocol,
        /// The port opened on the gateway.
        external_port: u16,
    },
}

impl Action {
    /// The action's name, as in `SOAPAction` and the body.
    pub fn name(&self) -> &'static str {
        match self {
            Action::GetExternalIpAddress => "GetExternalIPAddress",
            Action::AddPortMapping { .. } => "AddPortMapping",
            Action::DeletePortMapping { .. } => "DeletePortMapping",
        }
    }

    /// The `SOAPAction` header value (quoted, as UPnP requires).
    pub fn soap_action(&self, service_type: &str) -> String {
        format!("\"{service_type}#{}\"", self.name())
    }

    /// The SOAP envelope to post.
    pub fn body(&self, service_type: &str) -> String {
        let args = match self {
            Action::GetExternalIpAddress => String::new(),
            Action::AddPortMapping { protocol, external_port, internal_port, client, lease_secs, description } => {
                format!(
                    "<NewRemoteHost></NewRemoteHost><NewExternalPort>{external_port}</NewExternalPort>\
                     <NewProtocol>{}</NewProtocol><NewInternalPort>{internal_port}</NewInternalPort>\
                     <NewInternalClient>{client}</NewInternalClient><NewEnabled>1</NewEnabled>\
                     <NewPortMappingDescription>{}</NewPortMappingDescription>\
                     <NewLeaseDuration>{lease_secs}</NewLeaseDuration>",
                    protocol.name(),
                    escape(description)
                )
            }
            Action::DeletePortMapping { protocol, external_port } => format!(
                "<NewRemoteHost></NewRemoteHost><NewExternalPort>{external_port}</NewExternalPort>\
                 <NewProtocol>{}</NewProtocol>",
                protocol.name()
            ),
        };
        format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
             <u:{name} xmlns:u=\"{}\">{args}</u:{name}></s:Body></s:Envelope>\r\n",
            escape(service_type),
            name = self.name()
        )
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// What a successful action answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `GetExternalIPAddress`: the address (may be a lie, see [`super::usable_external_ip`]).
    ExternalIp(Ipv4Addr),
    /// `AddPortMapping` or `DeletePortMapping` succeeded.
    Done,
}

/// Reads the answer to `action`: HTTP `status` and `body`.
pub fn parse_answer(action: &Action, status: u16, body: &[u8]) -> Result<Answer, IgdError> {
    let (text, opt) = document(body, MAX_ANSWER)?;
    let doc = match roxmltree::Document::parse_with_options(&text, opt) {
        Ok(d) => d,
        Err(_) if status != 200 => return Err(IgdError::Status(status)),
        Err(e) => return Err(IgdError::Xml(e.to_string())),
    };
    let find = |name: &str| doc.descendants().find(|n| n.tag_name().name() == name);
    if let Some(code) = find("errorCode") {
        let code = code.text().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        let description =
            find("errorDescription").and_then(|n| n.text()).unwrap_or_default().trim().chars().take(100).collect();
        return Err(IgdError::Upnp { code, description });
    }
    if status != 200 {
        return Err(IgdError::Status(status));
    }
    match action {
        Action::GetExternalIpAddress => {
            let ip = find("NewExternalIPAddress").ok_or(IgdError::Missing("NewExternalIPAddress"))?;
            // An empty element is what a gateway without an uplink sends.
            let ip = ip.text().unwrap_or_default().trim();
            ip.parse().map(Answer::ExternalIp).map_err(|_| IgdError::Missing("NewExternalIPAddress"))
        }
        _ => {
            let response = format!("{}Response", action.name());
            find(&response).map(|_| Answer::Done).ok_or(IgdError::Missing("the action's Response element"))
        }
    }
}

#[cfg(test)]
#[path = "igd_tests.rs"]
mod tests;
