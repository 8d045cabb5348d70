//! The [`NetPolicy`] where names become addresses: host lookups for UDP trackers, DHT
//! routers and `--peer`, and the resolver of every HTTP agent (trackers, web seeds of `.torrent`
//! files), so that each address is checked right before it is dialled.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::{Lookup, NetPolicy, Refused};
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, DefaultConnector, NextTimeout, RustlsConnector, SocksConnector};

use crate::device_http::BoundTcpConnector;
use crate::proxy::Proxy;
use crate::runtime::Runtime;

/// The addresses of `host:port` that `policy` allows, looked up on the runtime if needed.
pub(crate) async fn resolve<R: Runtime>(policy: NetPolicy, host: String, port: u16) -> Result<Vec<SocketAddr>, String> {
    match policy.lookup(&host, port) {
        Lookup::Addrs(a) => Ok(a),
        Lookup::Refused(r) => Err(r.to_string()),
        Lookup::Resolve => {
            let found = R::resolve(host.clone(), port).await.map_err(|e| format!("{host}: {e}"))?;
            allowed(policy, &host, found)
        }
    }
}

/// The addresses of `host:port` that `policy` allows, looked up on the calling thread (the
/// blocking pool, or a command line being parsed).
pub fn resolve_blocking(policy: NetPolicy, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    match policy.lookup(host, port) {
        Lookup::Addrs(a) => Ok(a),
        Lookup::Refused(r) => Err(r.to_string()),
        Lookup::Resolve => {
            use std::net::ToSocketAddrs;
            let found = (host, port).to_socket_addrs().map_err(|e| format!("{host}: {e}"))?;
            allowed(policy, host, found.collect())
        }
    }
}

fn allowed(policy: NetPolicy, host: &str, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    if found.is_empty() {
        return Err(format!("{host}: no address"));
    }
    policy.filter(found).map_err(|r| r.to_string())
}

/// A ureq resolver that answers only with addresses `policy` allows; a refusal is an I/O
/// error carrying the [`Refused`] (see [`http_error`]).
#[derive(Debug)]
pub struct PolicyResolver {
    policy: NetPolicy,
    system: DefaultResolver,
}

impl PolicyResolver {
    /// A resolver for `policy`.
    pub fn new(policy: NetPolicy) -> PolicyResolver {
        PolicyResolver { policy, system: DefaultResolver::default() }
    }
}

impl Resolver for PolicyResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let refused = |r: Refused| ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, r));
        let port = uri.port_u16().or_else(|| match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        let (Some(host), Some(port)) = (uri.host(), port) else {
            // Malformed or another scheme: the system resolver reports it as ureq does.
            return self.system.resolve(uri, config, timeout);
        };
        let addrs = match self.policy.lookup(host, port) {
            Lookup::Addrs(a) => a,
            Lookup::Refused(r) => return Err(refused(r)),
            Lookup::Resolve => {
                let found = self.system.resolve(uri, config, timeout)?;
                self.policy.filter(found.iter().copied()).map_err(refused)?
            }
        };
        let mut out = self.empty();
        for a in addrs {
            // Full (more than ureq keeps): the rest are not needed.
            if out.try_push(a).is_err() {
                break;
            }
        }
        Ok(out)
    }
}

/// An HTTP agent whose every connection passes `policy` and goes through `proxy` when there
/// is one (never directly: a failing proxy fails the request), with a global `timeout`;
/// `statuses_as_errors` as ureq's `http_status_as_error`.
pub fn http_agent(
    policy: NetPolicy,
    proxy: Option<&Proxy>,
    timeout: Duration,
    statuses_as_errors: bool,
) -> ureq::Agent {
    // Built from an IP address and percent-encoded credentials, the proxy URI is always valid.
    let proxy = proxy.map(|p| p.for_ureq(policy).expect("a SOCKS5 proxy URI built from an IP address"));
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(statuses_as_errors)
        .user_agent(concat!("Shoal/", env!("CARGO_PKG_VERSION")));
    if proxy.is_some() {
        config = config.proxy(proxy);
    }
    let config = config.build();
    if crate::device::bound_interface().is_some() {
        // ureq's chain (SOCKS, then TCP, then TLS) with the TCP step's sockets bound.
        let connector = ().chain(SocksConnector::default()).chain(BoundTcpConnector).chain(RustlsConnector::default());
        return ureq::Agent::with_parts(config, connector, PolicyResolver::new(policy));
    }
    ureq::Agent::with_parts(config, DefaultConnector::default(), PolicyResolver::new(policy))
}

/// The message of a failed request: a policy refusal as it is ("refused by local-only mode:
/// 93.184.216.34:80"), anything else as ureq words it.
pub fn http_error(e: &ureq::Error) -> String {
    if let ureq::Error::Io(io) = e {
        if let Some(r) = io.get_ref().and_then(|inner| inner.downcast_ref::<Refused>()) {
            return r.to_string();
        }
    }
    e.to_string()
}

/// [`http_error`] of a request made by `agent`: through a proxy, a failure to connect is the
/// proxy's, and says so (`proxy: ...`).
pub fn http_error_of(agent: &ureq::Agent, e: &ureq::Error) -> String {
    let words = http_error(e);
    let via_proxy = agent.config().proxy().is_some();
    let connecting = matches!(e, ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound);
    if via_proxy && connecting && !words.starts_with("refused by") {
        format!("proxy: {words}")
    } else {
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_agent_refuses_off_loopback_before_any_connection() {
        let agent = http_agent(NetPolicy::LocalOnly, None, Duration::from_secs(5), false);
        for (url, msg) in [
            ("http://93.184.216.34/announce", "refused by local-only mode: 93.184.216.34:80"),
            ("https://[2001:db8::1]:8443/x", "refused by local-only mode: [2001:db8::1]:8443"),
        ] {
            let err = agent.get(url).call().unwrap_err();
            assert_eq!(http_error(&err), msg);
        }
        let err = agent.get("http://tracker.example.org:6969/announce").call().unwrap_err();
        assert!(http_error(&err).starts_with("refused by local-only mode: tracker.example.org"), "{err}");
    }

    #[test]
    fn lookups_follow_the_policy() {
        let refused = resolve_blocking(NetPolicy::LocalOnly, "192.0.2.1", 1).unwrap_err();
        assert_eq!(refused, "refused by local-only mode: 192.0.2.1:1");
        assert_eq!(resolve_blocking(NetPolicy::LocalOnly, "localhost", 2).unwrap()[0], "127.0.0.1:2".parse().unwrap());
    }
}
