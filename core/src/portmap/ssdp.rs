//! SSDP (UPnP Device Architecture 1.1 §1.3): the M-SEARCH that asks the LAN for an Internet
//! Gateway Device, and the strict reading of the unicast answers.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::url::Url;

/// The SSDP multicast group and port.
pub const GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
/// The device type we search for; IGD:2 devices answer it too (UDA: a device answers a search
/// for an older version of its type).
pub const SEARCH_TARGET: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/// Seconds a device may wait before answering (UDA's `MX`, 1 to 5).
pub const MX_SECS: u64 = 2;
/// Larger answers are not read (a real one is a few hundred bytes).
pub const MAX_ANSWER: usize = 2048;
/// Longest LOCATION we keep.
const MAX_LOCATION: usize = 512;

/// The M-SEARCH datagram.
pub fn search() -> Vec<u8> {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {GROUP}\r\nST: {SEARCH_TARGET}\r\nMAN: \"ssdp:discover\"\r\nMX: {MX_SECS}\r\n\r\n"
    )
    .into_bytes()
}

/// A device's answer: where its description is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The URL of the device description (`LOCATION`).
    pub location: String,
    /// What the device says it is (`ST`).
    pub search_target: String,
}

/// Why a datagram is not an answer we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Over [`MAX_ANSWER`] bytes.
    #[error("{0} bytes is over the limit")]
    TooLarge(usize),
    /// Not `HTTP/1.1 200 OK` text.
    #[error("not an SSDP answer")]
    NotAnswer,
    /// No `LOCATION`, or one that is not a plain `http://` URL of bounded length.
    #[error("no usable LOCATION")]
    Location,
    /// An `ST` that is no gateway (a printer answering, say).
    #[error("not a gateway: {0}")]
    NotGateway(String),
}

/// Reads a unicast answer to [`search`].
pub fn parse(d: &[u8]) -> Result<Answer, ParseError> {
    if d.len() > MAX_ANSWER {
        return Err(ParseError::TooLarge(d.len()));
    }
    let text = std::str::from_utf8(d).map_err(|_| ParseError::NotAnswer)?;
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let status = lines.next().unwrap_or_default();
    let mut words = status.split_ascii_whitespace();
    if !matches!(words.next(), Some(v) if v.eq_ignore_ascii_case("HTTP/1.1") || v.eq_ignore_ascii_case("HTTP/1.0"))
        || words.next() != Some("200")
    {
        return Err(ParseError::NotAnswer);
    }
    let (mut location, mut st) = (None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("location") {
            location = Some(value);
        } else if name.trim().eq_ignore_ascii_case("st") {
            st = Some(value);
        }
    }
    let st = st.unwrap_or_default();
    if !is_gateway(st) {
        return Err(ParseError::NotGateway(st.chars().take(100).collect()));
    }
    let location = location.ok_or(ParseError::Location)?;
    if location.len() > MAX_LOCATION || Url::parse(location).is_none() {
        return Err(ParseError::Location);
    }
    Ok(Answer { location: location.to_string(), search_target: st.to_string() })
}

/// Whether an `ST` names a gateway or one of its WAN connection services.
fn is_gateway(st: &str) -> bool {
    ["device:InternetGatewayDevice:", "service:WANIPConnection:", "service:WANPPPConnection:"]
        .iter()
        .any(|t| st.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_is_uda_text() {
        assert_eq!(
            String::from_utf8(search()).unwrap(),
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\
             ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\n\r\n"
        );
    }

    #[test]
    fn a_miniupnpd_answer() {
        // miniupnpd's SendSSDPResponse layout (minissdp.c).
        let d = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n\
                  ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                  USN: uuid:e7e3a8a2-e4d2-4b2e-9c8c-000000000000::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                  EXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n\
                  LOCATION: http://10.77.0.1:5000/rootDesc.xml\r\nOPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n\
                  01-NLS: 1\r\nBOOTID.UPNP.ORG: 1\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n";
        let a = parse(d).unwrap();
        assert_eq!(a.location, "http://10.77.0.1:5000/rootDesc.xml");
        assert!(a.search_target.ends_with("InternetGatewayDevice:1"));
    }

    #[test]
    fn a_real_miniupnpd_answer() {
        // Captured from Debian bookworm's miniupnpd 2.3.1 in a test namespace.
        let a = parse(include_bytes!("fixtures/miniupnpd-ssdp.txt")).unwrap();
        assert_eq!(a.location, "http://10.77.0.1:5000/rootDesc.xml");
        assert_eq!(a.search_target, SEARCH_TARGET);
    }

    #[test]
    fn garbage_and_other_devices_are_refused() {
        assert_eq!(parse(b""), Err(ParseError::NotAnswer));
        assert_eq!(parse(&[0xff; 40]), Err(ParseError::NotAnswer));
        assert_eq!(parse(&[b'a'; 4000]), Err(ParseError::TooLarge(4000)));
        assert_eq!(parse(b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n"), Err(ParseError::NotAnswer), "another search");
        let printer =
            b"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:Printer:1\r\nLOCATION: http://10.0.0.9/\r\n\r\n";
        assert!(matches!(parse(printer), Err(ParseError::NotGateway(_))));
        let no_loc = b"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n";
        assert_eq!(parse(no_loc), Err(ParseError::Location));
        let ftp =
            b"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: ftp://x/\r\n\r\n";
        assert_eq!(parse(ftp), Err(ParseError::Location));
    }
}
