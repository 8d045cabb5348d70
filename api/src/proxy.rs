//! The SOCKS5 proxy of a session, as the CLI's `--proxy socks5://user:pass@host:port` and the
//! daemon's `[libtorrent] proxy_type`, `proxy_server` and `proxy_auth` (Tribler's keys, whose
//! types are libtorrent's `proxy_type_t`) give it.

use shoal_core::socks::Credentials;
use shoal_core::NetPolicy;
use shoal_host::Proxy;

/// `libtorrent.proxy_type`: no proxy.
pub const NONE: i64 = 0;
/// `libtorrent.proxy_type`: SOCKS5 without authentication.
pub const SOCKS5: i64 = 2;
/// `libtorrent.proxy_type`: SOCKS5 with username and password.
pub const SOCKS5_PW: i64 = 3;

/// Why a `proxy_type` is refused: the types Tribler offers that Shoal does not implement.
pub fn unsupported_type(proxy_type: i64) -> Option<String> {
    let name = match proxy_type {
        1 => "SOCKS4",
        4 => "HTTP",
        5 => "HTTP with authentication",
        NONE | SOCKS5 | SOCKS5_PW => return None,
        _ => "unknown",
    };
    Some(format!(
        "libtorrent.proxy_type {proxy_type} ({name}) is not supported: use 0 (none), 2 (SOCKS5) or 3 (SOCKS5 with \
         username and password)"
    ))
}

/// A proxy address as written (`host:port`, `[v6]:port`), not yet resolved.
struct HostPort<'a> {
    host: &'a str,
    port: u16,
}

fn host_port(s: &str) -> Result<HostPort<'_>, String> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("proxy address {s:?}: HOST:PORT expected"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = port.parse::<u16>().ok().filter(|&p| p != 0);
    match (host, port) {
        ("", _) => Err(format!("proxy address {s:?}: the host is missing")),
        (_, None) => Err(format!("proxy address {s:?}: the port must be 1 to 65535")),
        (host, Some(port)) => Ok(HostPort { host, port }),
    }
}

fn credentials(user: &str, password: &str) -> Result<Credentials, String> {
    Credentials::new(user, password).map_err(|e| format!("proxy credentials: {e}"))
}

/// Checks the three settings together without resolving anything (for `POST /settings`).
pub fn check_settings(proxy_type: i64, server: &str, auth: &str) -> Result<(), String> {
    if let Some(e) = unsupported_type(proxy_type) {
        return Err(e);
    }
    if proxy_type == NONE {
        return Ok(());
    }
    host_port(server).map_err(|e| format!("libtorrent.proxy_server: {e}"))?;
    if proxy_type == SOCKS5_PW {
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        credentials(user, password).map_err(|e| format!("libtorrent.proxy_auth: {e} (\"user:password\")"))?;
    }
    Ok(())
}

/// The daemon's proxy from its settings: `None` for type 0; the server's name resolved as
/// `policy` allows.
pub fn from_settings(proxy_type: i64, server: &str, auth: &str, policy: NetPolicy) -> Result<Option<Proxy>, String> {
    check_settings(proxy_type, server, auth)?;
    if proxy_type == NONE {
        return Ok(None);
    }
    let auth = match auth.split_once(':') {
        Some((user, password)) if proxy_type == SOCKS5_PW => Some(credentials(user, password)?),
        _ => None,
    };
    resolve(server, auth, policy).map(Some)
}

/// `--proxy socks5://[user:password@]host:port` (user and password percent-decoded).
pub fn from_url(url: &str, policy: NetPolicy) -> Result<Proxy, String> {
    let rest = url
        .strip_prefix("socks5://")
        .ok_or_else(|| format!("proxy {url:?}: only socks5://[user:password@]host:port is supported"))?;
    let (auth, server) = match rest.rsplit_once('@') {
        Some((userinfo, server)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            (Some(credentials(&decode(user), &decode(password))?), server)
        }
        None => (None, rest),
    };
    resolve(server.trim_end_matches('/'), auth, policy)
}

fn resolve(server: &str, auth: Option<Credentials>, policy: NetPolicy) -> Result<Proxy, String> {
    let HostPort { host, port } = host_port(server)?;
    let addrs = shoal_host::resolve_blocking(policy, host, port).map_err(|e| format!("proxy address: {e}"))?;
    let addr = *addrs.first().ok_or_else(|| format!("proxy address {server:?} resolves to nothing"))?;
    Ok(Proxy { addr, auth })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let p = from_url("socks5://alice:p%40ss@127.0.0.1:1080", NetPolicy::LocalOnly).unwrap();
        assert_eq!(p.addr, "127.0.0.1:1080".parse().unwrap());
        let auth = p.auth.unwrap();
        assert_eq!((auth.username(), auth.password()), ("alice", "p@ss"));
        let p = from_url("socks5://[::1]:9050/", NetPolicy::LocalOnly).unwrap();
        assert_eq!((p.addr, p.auth), ("[::1]:9050".parse().unwrap(), None));
        for bad in ["http://127.0.0.1:8080", "socks4://127.0.0.1:1080", "socks5://127.0.0.1", "socks5://:1080"] {
            assert!(from_url(bad, NetPolicy::LocalOnly).is_err(), "{bad}");
        }
        let e = from_url("socks5://192.0.2.1:1080", NetPolicy::LocalOnly).unwrap_err();
        assert!(e.contains("refused by local-only mode"), "{e}");
    }

    #[test]
    fn settings() {
        assert_eq!(from_settings(0, ":", ":", NetPolicy::LocalOnly).unwrap(), None);
        let p = from_settings(2, "localhost:1080", "ignored:here", NetPolicy::LocalOnly).unwrap().unwrap();
        assert_eq!((p.addr.port(), p.auth), (1080, None));
        let p = from_settings(3, "127.0.0.1:1080", "bob:a:b", NetPolicy::LocalOnly).unwrap().unwrap();
        assert_eq!(p.auth.unwrap().password(), "a:b");
        for t in [1, 4, 5] {
            let e = check_settings(t, "127.0.0.1:1080", "u:p").unwrap_err();
            assert!(e.contains(&format!("proxy_type {t} (")), "{e}");
        }
        assert!(check_settings(3, "127.0.0.1:1080", ":").unwrap_err().contains("proxy_auth"));
        assert!(check_settings(2, ":", ":").unwrap_err().contains("proxy_server"));
    }
}
