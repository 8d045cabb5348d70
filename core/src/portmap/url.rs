//! The few URL operations UPnP needs: split an `http://host:port/path` URL and resolve a
//! device's (possibly relative) `controlURL` against the description's address.

use std::net::IpAddr;

/// An `http://` URL whose host is an IP address (gateways on the LAN are addressed by IP;
/// a name would need a lookup the policy may refuse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
    /// Starts with `/`.
    pub(crate) path: String,
}

impl Url {
    /// Parses `http://ip[:port][/path]`; `None` for anything else.
    pub(crate) fn parse(s: &str) -> Option<Url> {
        let rest = s.get(..7).filter(|p| p.eq_ignore_ascii_case("http://")).map(|_| &s[7..])?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return None;
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().ok().filter(|&p| p != 0)?,
            None => 80,
        };
        Some(Url { ip: host.parse().ok()?, port, path: path.to_string() })
    }

    /// `reference` (absolute, or a path, or relative to this URL's directory) made absolute.
    pub(crate) fn join(&self, reference: &str) -> Option<Url> {
        if reference.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("http://")) {
            return Url::parse(reference);
        }
        let path = if reference.starts_with('/') {
            reference.to_string()
        } else {
            let dir = &self.path[..=self.path.rfind('/').unwrap_or(0)];
            format!("{dir}{reference}")
        };
        Url::parse(&format!("http://{}{path}", self.authority()))
    }

    fn authority(&self) -> String {
        match self.ip {
            IpAddr::V4(ip) => format!("{ip}:{}", self.port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.port),
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joins() {
        let base = Url::parse("http://10.77.0.1:5000/rootDesc.xml").unwrap();
        assert_eq!(base.port, 5000);
        assert_eq!(base.join("/ctl/IPConn").unwrap().to_string(), "http://10.77.0.1:5000/ctl/IPConn");
        assert_eq!(base.join("ctl/IPConn").unwrap().to_string(), "http://10.77.0.1:5000/ctl/IPConn");
        let deep = Url::parse("http://192.168.1.1/igd/desc.xml").unwrap();
        assert_eq!(deep.join("upnp/control").unwrap().to_string(), "http://192.168.1.1:80/igd/upnp/control");
        assert_eq!(deep.join("http://192.168.1.1:49000/x").unwrap().to_string(), "http://192.168.1.1:49000/x");
        assert_eq!(Url::parse("http://[fe80::1]:80").unwrap().path, "/");
        for bad in
            ["https://10.0.0.1/", "http://router.lan/", "http://10.0.0.1:0/", "http://10.0.0.1:99999/", "http://"]
        {
            assert_eq!(Url::parse(bad), None, "{bad}");
        }
        assert_eq!(base.join("/a b"), None);
    }
}
