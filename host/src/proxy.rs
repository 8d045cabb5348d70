//! Outgoing traffic through a SOCKS5 proxy: peer connections (CONNECT), UDP tracker exchanges
//! (UDP ASSOCIATE) and HTTP requests (ureq's SOCKS connector). The protocol is
//! [`shoal_core::socks`]; this module only moves its bytes. A proxy that fails is an error
//! (`proxy: ...`), never a reason to go direct.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shoal_core::socks::{Command, Credentials, Handshake, ProxyError, SocksError, Status, Target};
use shoal_core::NetPolicy;

use crate::runtime::Runtime;

/// A SOCKS5 proxy that carries every outgoing connection of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// The proxy's address (it must pass the session's network policy, like any other).
    pub addr: SocketAddr,
    /// Username and password (RFC 1929), if the proxy asks for them.
    pub auth: Option<Credentials>,
}

/// Largest read while handshaking: a whole reply ([`shoal_core::socks::MAX_REPLY`]) and the
/// first bytes that follow it.
const HANDSHAKE_READ: usize = 1024;

/// A stream to the proxy, split, that has completed a handshake.
pub(crate) struct Relayed<R: Runtime> {
    /// The reading half.
    pub(crate) reader: R::Reader,
    /// The writing half.
    pub(crate) writer: R::Writer,
    /// The address the proxy bound for the request.
    pub(crate) bound: Target,
    /// Bytes that arrived right behind the reply (the relayed stream's first).
    pub(crate) rest: Vec<u8>,
}

impl Proxy {
    /// Connects to the proxy (if `policy` allows its address) and asks it for `command` to
    /// `target`.
    pub(crate) async fn request<R: Runtime>(
        &self,
        policy: NetPolicy,
        command: Command,
        target: Target,
    ) -> Result<Relayed<R>, ProxyError> {
        let mut handshake = Handshake::new(command, target, self.auth.clone())?;
        let addr =
            policy.check(self.addr).map_err(|_| ProxyError::Unreachable(std::io::ErrorKind::PermissionDenied))?;
        let stream = crate::device::connect::<R>(addr).await.map_err(|e| ProxyError::Unreachable(e.kind()))?;
        let (mut reader, mut writer) = R::split(stream);
        let io = |e: std::io::Error| ProxyError::Io(e.kind());
        let mut buf = vec![0u8; HANDSHAKE_READ];
        loop {
            let out = handshake.transmit();
            if !out.is_empty() {
                R::write_all(&mut writer, &out).await.map_err(io)?;
            }
            let n = R::read(&mut reader, &mut buf).await.map_err(io)?;
            if n == 0 {
                return Err(handshake.handle_eof().into());
            }
            if let Status::Done { bound, rest } = handshake.handle_bytes(&buf[..n])? {
                return Ok(Relayed { reader, writer, bound, rest });
            }
        }
    }

    /// Where the proxy relays datagrams of an association it bound at `bound`: a server that
    /// answers with an unspecified address means its own (RFC 1928 leaves this open; dante
    /// and others do it).
    pub(crate) fn relay_addr(&self, bound: &Target) -> Result<SocketAddr, ProxyError> {
        match bound {
            Target::Ip(a) if a.ip().is_unspecified() => Ok(SocketAddr::new(self.addr.ip(), a.port())),
            Target::Ip(a) => Ok(*a),
            Target::Domain(..) => Err(ProxyError::Socks(SocksError::BadAddressType(3))),
        }
    }

    /// The ureq proxy for HTTP requests: host names go to the proxy to resolve (no lookup
    /// leaves the host directly), except under a contained policy (local-only, namespace),
    /// where they are resolved here so the policy sees each address before it is asked for.
    pub(crate) fn for_ureq(&self, policy: NetPolicy) -> Result<ureq::Proxy, ureq::Error> {
        let host = match self.addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let mut b = ureq::Proxy::builder(ureq::ProxyProtocol::Socks5)
            .host(&host)
            .port(self.addr.port())
            .resolve_target(policy.is_contained());
        if let Some(auth) = &self.auth {
            b = b.username(auth.username()).password(auth.password());
        }
        b.build()
    }
}

/// The target of a UDP ASSOCIATE: where our datagrams come from, unknown before the socket
/// is bound, which RFC 1928 writes as all zeros.
pub(crate) fn associate_target() -> Target {
    Target::Ip(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
}

/// A session's proxy with the log of its failures, shared by the tasks that use it.
pub(crate) struct Proxied {
    /// The proxy.
    pub(crate) proxy: Proxy,
    /// Where its failures are said.
    pub(crate) log: FailureLog,
}

/// Says in the log that the proxy failed, at most once per [`WARN_EVERY`]: with the proxy down,
/// every dial fails the same way.
pub(crate) struct FailureLog {
    last: Mutex<Option<Instant>>,
}

/// The shortest time between two warnings about a failing proxy.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl FailureLog {
    /// A log that has said nothing yet.
    pub(crate) fn new() -> Self {
        FailureLog { last: Mutex::new(None) }
    }

    /// Warns that reaching `what` through the proxy failed with `e`, unless it warned lately.
    pub(crate) fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
            *last = Some(now);
            tracing::warn!("proxy: {e} (reaching {what}; nothing is sent directly while a proxy is set)");
        } else {
            tracing::debug!("proxy: {e} (reaching {what})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_of_an_unspecified_bound_address_is_the_proxy() {
        let p = Proxy { addr: "127.0.0.1:1080".parse().unwrap(), auth: None };
        let zero = Target::Ip("0.0.0.0:40000".parse().unwrap());
        assert_eq!(p.relay_addr(&zero).unwrap(), "127.0.0.1:40000".parse().unwrap());
        let given = Target::Ip("10.0.0.9:40001".parse().unwrap());
        assert_eq!(p.relay_addr(&given).unwrap(), "10.0.0.9:40001".parse().unwrap());
    }

    #[test]
    fn ureq_proxy_carries_address_and_credentials() {
        let auth = Some(Credentials::new("u s", "p@ss").unwrap());
        let p = Proxy { addr: "[::1]:1080".parse().unwrap(), auth };
        let u = p.for_ureq(NetPolicy::LocalOnly).unwrap();
        assert_eq!((u.host(), u.port()), ("[::1]", 1080));
        assert_eq!((u.username(), u.password()), (Some("u s"), Some("p@ss")));
        assert!(u.resolve_target());
    }
}
