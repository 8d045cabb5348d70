//! The web UI at `/ui` (issue #19): a single page of plain JavaScript modules and CSS written
//! for Shoal (`api/ui/`), embedded in the binary, and one more client of the REST API.
//!
//! The page and its files load without a key (they hold no data); the page asks for the key
//! and keeps it in the `api_key` cookie, which the daemon accepts on every API call, as Tribler
//! 8's UI does. `/ui?key=…`, printed at start-up, signs in directly. Every answer here carries
//! the headers a browser UI needs: a Content-Security-Policy with no inline script, no framing,
//! no referrer (the sign-in link holds the key).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use include_dir::{include_dir, Dir};

use super::api::{ApiError, ApiRequest, ApiResponse, Body, HandlerFuture};
use super::state::Daemon;

/// The UI's files, compiled in.
static ASSETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/ui");

/// Only our own files, our own API, and media streamed from it; no inline script or style,
/// no plugins, no framing, no `<base>` or form posts elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    media-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// The headers of every answer under `/ui`.
fn security_headers() -> Vec<(&'static str, String)> {
    vec![
        ("content-security-policy", CSP.into()),
        ("x-frame-options", "DENY".into()),
        ("x-content-type-options", "nosniff".into()),
        ("referrer-policy", "no-referrer".into()),
        ("cross-origin-opener-policy", "same-origin".into()),
    ]
}

/// The `Content-Type` of a UI file, from its extension (only the kinds the UI holds).
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// A strong validator of a file's bytes. Files are revalidated on every load (`no-cache`),
/// so a new binary's UI is picked up at once, and an unchanged file costs a `304`.
fn etag(bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("\"{:016x}-{:x}\"", h.finish(), bytes.len())
}

/// A UI file as an answer: `200` with it, or `304` when the browser's copy is current.
fn file_response(req: &ApiRequest, name: &str, bytes: &'static [u8]) -> ApiResponse {
    let tag = etag(bytes);
    let mut headers = security_headers();
    headers.push(("cache-control", "no-cache".into()));
    headers.push(("etag", tag.clone()));
    let current = req.header("if-none-match").is_some_and(|given| given.split(',').any(|t| t.trim() == tag));
    let (status, body) = if current { (304, Vec::new()) } else { (200, bytes.to_vec()) };
    ApiResponse { status, content_type: content_type(name), headers, body: Body::Bytes(body) }
}

/// The bytes of a UI file, or `None`.
fn asset_bytes(name: &str) -> Option<&'static [u8]> {
    // Names are flat (no directories), so nothing outside the UI can be named.
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return None;
    }
    ASSETS.get_file(name).map(|f| f.contents())
}

/// `GET /ui`: the page.
pub fn page(_d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let html =
            asset_bytes("index.html").ok_or_else(|| ApiError::unhandled("UiError", "the web UI has no index.html"))?;
        Ok(file_response(&req, "index.html", html))
    })
}

/// `GET /ui/{file}`: the page's scripts and styles.
pub fn asset(_d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let name = req.param("file").unwrap_or_default().to_string();
        match asset_bytes(&name) {
            Some(bytes) => Ok(file_response(&req, &name, bytes)),
            None => Err(ApiError::Handled(404, format!("no such file of the web UI: {name}"))),
        }
    })
}

/// `GET /`: to the UI (relative, so it works behind any host name the user allowed).
pub fn root(_d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let mut headers = security_headers();
        headers.push(("location", "/ui".into()));
        Ok(ApiResponse {
            status: 302,
            content_type: "text/plain; charset=utf-8",
            headers,
            body: Body::Bytes(Vec::new()),
        })
    })
}

/// Whether `path` is served without a key: the page, its files and the redirect to it.
pub fn is_public(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// The UI's address, logged at start-up. An unspecified listening address becomes loopback,
/// which is reachable from the machine itself.
pub fn page_link(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/ui", std::net::SocketAddr::new(ip, addr.port()))
}

/// The link that opens the UI signed in, printed at start-up on a terminal only.
pub fn sign_in_link(addr: std::net::SocketAddr, key: &str) -> String {
    // Unreserved characters (RFC 3986) stay as they are, so a usual key reads as itself.
    const QUERY: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    let key = percent_encoding::utf8_percent_encode(key, QUERY);
    format!("{}?key={key}", page_link(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_known_type() {
        for f in ASSETS.files() {
            let name = f.path().to_string_lossy();
            assert_ne!(content_type(&name), "application/octet-stream", "{name}");
        }
        assert!(asset_bytes("index.html").is_some());
    }

    #[test]
    fn names_cannot_leave_the_ui() {
        for name in ["", "../Cargo.toml", ".hidden", "a/b.js", "/etc/passwd"] {
            assert!(asset_bytes(name).is_none(), "{name}");
        }
    }

    #[test]
    fn public_paths() {
        assert!(is_public("/ui") && is_public("/ui/app.js") && is_public("/"));
        assert!(!is_public("/uix") && !is_public("/downloads") && !is_public("/ui-x"));
    }

    #[test]
    fn link_names_a_reachable_address() {
        let any: std::net::SocketAddr = "0.0.0.0:8085".parse().unwrap();
        assert_eq!(sign_in_link(any, "a b-c_d"), "http://127.0.0.1:8085/ui?key=a%20b-c_d");
        let v6: std::net::SocketAddr = "[::]:1".parse().unwrap();
        assert_eq!(sign_in_link(v6, "k"), "http://[::1]:1/ui?key=k");
    }
}
