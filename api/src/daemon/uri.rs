//! Fetching a torrent file named by a URI (`file:`, `http:`, `https:`), for `PUT /downloads`
//! and `GET /torrentinfo`.

use std::path::PathBuf;
use std::time::Duration;

use super::api::ApiError;
use crate::rt::Rt;

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

/// The bytes of the torrent file a URI names (fetched through `proxy` when set). Failures are
/// Tribler's 500 with a message.
pub async fn fetch_torrent(rt: Rt, proxy: Option<shoal_host::Proxy>, uri: &str) -> Result<Vec<u8>, ApiError> {
    match parse(uri)? {
        Uri::File(path) => read_torrent_file(rt, path).await.map_err(|e| ApiError::Handled(e.status(), e.to_string())),
        Uri::Http(url) => {
            rt.unblock(move || http_get(&url, proxy.as_ref())).await.map_err(|e| ApiError::Handled(500, e))
        }
        Uri::Magnet => {
            Err(ApiError::Handled(500, "a magnet link is not a torrent file: its metadata comes from peers".into()))
        }
    }
}

/// Files read at once for `file:` URIs: a few threads of the blocking pool at most, so a flood
/// of slow reads can never take the threads that checkpoint writes need.
const FILE_READ_SLOTS: usize = 4;

/// Why a `file:` URI could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileUriError {
    /// Opening, `fstat` or reading failed.
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A FIFO, device, directory or socket: never read.
    #[error("{0} is not a regular file")]
    NotRegular(PathBuf),
    /// Over [`MAX_TORRENT`].
    #[error("{0} is larger than {MAX_TORRENT} bytes")]
    TooLarge(PathBuf),
}

impl FileUriError {
    /// The HTTP status: the caller named something that is no torrent file (400), or the file
    /// could not be read (Tribler's 500).
    pub fn status(&self) -> u16 {
        match self {
            FileUriError::Io(..) => 500,
            FileUriError::NotRegular(_) | FileUriError::TooLarge(_) => 400,
        }
    }
}

/// Reads a regular file of at most [`MAX_TORRENT`] bytes. It is opened non-blocking (a FIFO
/// then cannot hold a thread waiting for a writer) and checked with `fstat` before any read.
pub async fn read_torrent_file(rt: Rt, path: PathBuf) -> Result<Vec<u8>, FileUriError> {
    static SLOTS: async_lock::Semaphore = async_lock::Semaphore::new(FILE_READ_SLOTS);
    let _slot = SLOTS.acquire().await;
    rt.unblock(move || {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |e| FileUriError::Io(path.clone(), e);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path)
            .map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.file_type().is_file() {
            return Err(FileUriError::NotRegular(path));
        }
        if meta.len() > MAX_TORRENT {
            return Err(FileUriError::TooLarge(path));
        }
        // Sized from fstat, and still capped: the file may grow while it is read.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_TORRENT + 1).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 > MAX_TORRENT {
            return Err(FileUriError::TooLarge(path));
        }
        Ok(bytes)
    })
    .await
}

/// Fetches a `.torrent` over HTTP(S); every address dialled (redirects included) passes the
/// session's network policy (`SHOAL_LOCAL_ONLY=1`: loopback only), through the session's proxy
/// if it has one.
fn http_get(url: &str, proxy: Option<&shoal_host::Proxy>) -> Result<Vec<u8>, String> {
    let policy = crate::run::net_policy();
    let agent = shoal_host::http_agent(policy, proxy, Duration::from_secs(30), true);
    let fail = |e: ureq::Error| format!("cannot fetch {url}: {}", shoal_host::http_error_of(&agent, &e));
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

    #[test]
    fn only_regular_files_are_read() {
        let rt = Rt::of::<shoal_smol::Smol>();
        shoal_smol::block_on(async {
            for special in ["/dev/zero", "/dev/null", "/"] {
                let e = read_torrent_file(rt, special.into()).await.unwrap_err();
                assert_eq!(e.status(), 400, "{special}: {e}");
                assert!(e.to_string().contains("not a regular file"), "{e}");
            }
            let dir = std::env::temp_dir().join(format!("shoal-uri-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let fifo = dir.join("fifo");
            let _ = std::fs::remove_file(&fifo);
            rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
            // Nobody writes to it: a blocking open would wait forever.
            assert_eq!(read_torrent_file(rt, fifo.clone()).await.unwrap_err().status(), 400);
            let f = dir.join("a.torrent");
            std::fs::write(&f, b"d4:infod4:name1:aee").unwrap();
            assert_eq!(read_torrent_file(rt, f).await.unwrap(), b"d4:infod4:name1:aee");
            std::fs::remove_dir_all(&dir).unwrap();
        });
    }
}
