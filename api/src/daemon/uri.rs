//! Fetching a torrent file named by a URI (`file:`, `http:`, `https:`), for `PUT /downloads`
//! and `GET /torrentinfo`.

use std::path::PathBuf;
use std::time::Duration;

use super::api::ApiError;

/// The largest torrent file accepted (a 10,000-file torrent is a few MB).
pub const MAX_TORRENT: u64 = 64 << 20;

/// The kinds of URI the daemon understands.
pub enum Uri {
    File(PathBuf),
    Http(String),
    Magnet,
}

/// Classifies a URI; anything else is Tribler's 400 `invalid uri`.
pub fn parse(uri: &str) -> Result<Uri, ApiError> {
    let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
    if let Some(rest) = uri.strip_prefix("file:") {
        // file:/abs, file:///abs and file://localhost/abs all name /abs.
        let rest = rest.strip_prefix("//localhost").or_else(|| rest.strip_prefix("//")).unwrap_or(rest);
        let path = percent_encoding::percent_decode_str(rest).decode_utf8_lossy().into_owned();
        return Ok(Uri::File(PathBuf::from(path)));
    }
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Uri::Http(uri.to_string()));
    }
    if lower.starts_with("magnet:") {
        return Ok(Uri::Magnet);
    }
    Err(ApiError::bad_request("invalid uri"))
}

/// The bytes of the torrent file a URI names. Failures are Tribler's 500 with a message.
pub async fn fetch_torrent(uri: &str) -> Result<Vec<u8>, ApiError> {
    match parse(uri)? {
        Uri::File(path) => blocking::unblock(move || {
            use std::io::Read;
            let file = std::fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut bytes = Vec::new();
            file.take(MAX_TORRENT + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if bytes.len() as u64 > MAX_TORRENT {
                return Err(format!("{} is larger than {MAX_TORRENT} bytes", path.display()));
            }
            Ok(bytes)
        })
        .await
        .map_err(|e| ApiError::Handled(500, e)),
        Uri::Http(url) => blocking::unblock(move || http_get(&url)).await.map_err(|e| ApiError::Handled(500, e)),
        Uri::Magnet => {
            Err(ApiError::Handled(500, "a magnet link is not a torrent file: its metadata comes from peers".into()))
        }
    }
}

/// Fetches a `.torrent` over HTTP(S); every address dialled (redirects included) passes the
/// session's network policy (`SHOAL_LOCAL_ONLY=1`: loopback only).
fn http_get(url: &str) -> Result<Vec<u8>, String> {
    let policy = shoal_core::NetPolicy::new(crate::run::local_only());
    let agent = shoal_smol::adapter::http_agent(policy, Duration::from_secs(30), true);
    let fail = |e: ureq::Error| format!("cannot fetch {url}: {}", shoal_smol::adapter::http_error(&e));
    let mut resp = agent.get(url).call().map_err(fail)?;
    resp.body_mut().with_config().limit(MAX_TORRENT).read_to_vec().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn schemes() {
        assert!(matches!(parse("file:/a/b.torrent"), Ok(Uri::File(p)) if p == Path::new("/a/b.torrent")));
        assert!(matches!(parse("file:///a/b%20c.torrent"), Ok(Uri::File(p)) if p == Path::new("/a/b c.torrent")));
        assert!(matches!(parse("HTTP://x/y"), Ok(Uri::Http(_))));
        assert!(matches!(parse("magnet:?xt=urn:btih:00"), Ok(Uri::Magnet)));
        assert!(matches!(parse("ftp://x"), Err(ApiError::Handled(400, m)) if m == "invalid uri"));
    }
}
