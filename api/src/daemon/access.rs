//! Who may call the API: the browser checks before auth (DNS rebinding, cross-origin and
//! cross-site requests), the API key in any of the places Tribler accepts it, and the paths
//! served without it.

use serde_json::json;

use super::api::{ApiRequest, ApiResponse};
use super::ui;

/// Paths served without a key (prefix match, as in Tribler), and the web UI's files.
pub fn exempt_from_auth(path: &str) -> bool {
    ["/docs", "/static", "/debug-ui"].iter().any(|p| path.starts_with(p)) || ui::is_public(path)
}

/// Whether the request carries the key in any of the three places Tribler accepts.
pub fn authorized(req: &ApiRequest, key: &str) -> bool {
    if key.is_empty() || exempt_from_auth(&req.path) {
        return true;
    }
    let given = [req.header("x-api-key"), req.query("apikey"), req.cookie("api_key")];
    given.into_iter().flatten().any(|g| constant_time_eq(g.as_bytes(), key.as_bytes()))
}

/// `[api] allowed_hosts` as a list: comma-separated names, lower case.
pub fn host_list(text: &str) -> Vec<String> {
    text.split(',').map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
}

/// Whether a `Host` header names this machine in a way DNS cannot rebind: an IP literal,
/// `localhost`, or a name the user listed.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => return v6.split_once(']').is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(n, _)| n)
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok() || name == "localhost" || allowed.contains(&name)
}

/// The browser checks, before auth: a `Host` that is not an IP literal, `localhost` or an
/// allowed name is DNS rebinding; an `Origin` other than our own (`http://` + `Host`), or a
/// fetch a browser marks cross-site, is a forged request (the key may be in a cookie). Both get
/// 403. Tribler's GUI and scripts send no `Origin`.
pub fn browser_refusal(req: &ApiRequest, allowed_hosts: &[String]) -> Option<ApiResponse> {
    let forbidden = |message: String| Some(ApiResponse::json(403, &json!({ "error": message })));
    let host = req.header("host").unwrap_or_default();
    if !host_allowed(host, allowed_hosts) {
        return forbidden(format!(
            "Host {host:?} is not this machine's address: use an IP address or localhost, or list the name in [api] allowed_hosts"
        ));
    }
    if let Some(origin) = req.header("origin") {
        if !origin.eq_ignore_ascii_case(&format!("http://{host}")) {
            return forbidden(format!("requests from {origin:?} are not allowed (cross-origin)"));
        }
    }
    if let Some(site) = req.header("sec-fetch-site") {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return forbidden("requests from other sites are not allowed (cross-site)".into());
        }
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], query: &[(&str, &str)], path: &str) -> ApiRequest {
        ApiRequest {
            method: "GET".into(),
            path: path.into(),
            query: query.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            headers: headers.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            ..ApiRequest::default()
        }
    }

    #[test]
    fn rebinding_and_cross_origin_are_refused() {
        let allowed = host_list(" Box.lan , ");
        let refused =
            |headers: &[(&str, &str)]| browser_refusal(&req(headers, &[], "/settings"), &allowed).map(|r| r.status);
        for host in [
            "127.0.0.1:8085",
            "127.0.0.1",
            "localhost:8085",
            "LOCALHOST",
            "[::1]:8085",
            "10.0.0.2:1",
            "box.lan:8085",
            "box.lan.",
        ] {
            assert_eq!(refused(&[("host", host)]), None, "{host}");
        }
        for host in [
            "evil.example:8085",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[nonsense]:1",
            "",
            "box.lan.evil",
        ] {
            assert_eq!(refused(&[("host", host)]), Some(403), "{host}");
        }
        let h = ("host", "127.0.0.1:8085");
        assert_eq!(refused(&[h, ("origin", "http://127.0.0.1:8085")]), None);
        assert_eq!(refused(&[h, ("origin", "http://evil.example")]), Some(403));
        assert_eq!(refused(&[h, ("origin", "null")]), Some(403));
        assert_eq!(refused(&[h, ("origin", "http://127.0.0.1:8086")]), Some(403));
        assert_eq!(refused(&[h, ("sec-fetch-site", "cross-site")]), Some(403));
        assert_eq!(refused(&[h, ("sec-fetch-site", "same-origin")]), None);
        assert_eq!(refused(&[h, ("sec-fetch-site", "none")]), None);
    }

    #[test]
    fn auth_three_ways() {
        assert!(authorized(&req(&[("x-api-key", "k1")], &[], "/settings"), "k1"));
        assert!(authorized(&req(&[], &[("apikey", "k1")], "/settings"), "k1"));
        assert!(authorized(&req(&[("cookie", "a=b; api_key=k1")], &[], "/settings"), "k1"));
        assert!(!authorized(&req(&[("cookie", "api_key=k2")], &[], "/settings"), "k1"));
        assert!(!authorized(&req(&[("x-api-key", "k")], &[], "/settings"), "k1"));
        assert!(authorized(&req(&[], &[], "/docs/swagger.json"), "k1"));
        assert!(authorized(&req(&[], &[], "/docsx"), "k1"));
        assert!(!authorized(&req(&[], &[], "/settings/"), "k1"));
        assert!(!authorized(&req(&[], &[], "/uix"), "k1"));
        assert!(authorized(&req(&[], &[], "/ui/app.js"), "k1"));
    }
}
