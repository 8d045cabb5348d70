//! REST connections at the socket: how many are admitted, how long a request head may take,
//! and the status lines async-h1 would not send.
//!
//! Every connection holds one of a fixed number of slots (from the descriptor budget). A
//! connection that waits for a request head can be evicted, oldest first, to make room for a
//! new one, so idle sockets can never lock REST out; when every slot is busy serving (or
//! streaming `/events`), a new connection gets a minimal `503` and is closed. A head must be
//! complete within [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD`] bytes (else `431`), and a head
//! async-h1 would reject is answered here with `400`/`505` instead of a silent close.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::rt::Rt;
use async_channel::{Receiver, Sender};
use async_net::TcpStream;
use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A new connection's first request head must arrive complete within this (slowloris).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The idle time allowed between requests of a kept-alive connection (async-h1's own timeout,
/// which clients have been living with). Such a connection can be evicted when slots are
/// short, so waiting long costs nothing under a flood.
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(60);

/// The longest request head (async-h1's own limit).
pub const MAX_HEAD: usize = 8 << 10;

/// Most header lines in a head (async-h1's own limit).
const MAX_HEADERS: usize = 128;

/// How long a refused connection is given to take its status line.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The slots of REST connections.
pub struct Slots {
    cap: usize,
    inner: Mutex<SlotsInner>,
}

#[derive(Default)]
struct SlotsInner {
    live: usize,
    next_id: u64,
    /// Connections waiting for a request head, oldest first, with the signal that evicts them.
    idle: BTreeMap<u64, Sender<()>>,
}

/// A connection's slot, freed on drop.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    evict_tx: Sender<()>,
    evicted: Receiver<()>,
}

impl Slots {
    /// At most `cap` connections at once (at least one).
    pub fn new(cap: usize) -> Arc<Slots> {
        Arc::new(Slots { cap: cap.max(1), inner: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection: a free one, else one taken from the oldest connection
    /// waiting for a head; `None` when every connection is busy.
    pub fn admit(self: &Arc<Slots>) -> Option<Slot> {
        let mut inner = self.lock();
        if inner.live >= self.cap {
            let (_, evict) = inner.idle.pop_first()?;
            let _ = evict.try_send(());
        }
        inner.live += 1;
        inner.next_id += 1;
        let (evict_tx, evicted) = async_channel::bounded(1);
        Some(Slot { slots: self.clone(), id: inner.next_id, evict_tx, evicted })
    }

    /// Connections holding a slot.
    #[cfg(test)]
    fn live(&self) -> usize {
        self.lock().live
    }
}

impl Slot {
    fn set_idle(&self, idle: bool) {
        let mut inner = self.slots.lock();
        if idle {
            inner.idle.insert(self.id, self.evict_tx.clone());
        } else {
            inner.idle.remove(&self.id);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.idle.remove(&self.id);
        inner.live -= 1;
    }
}

/// Why no request head could be read.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// The peer closed, went silent for [`HEAD_TIMEOUT`], or the slot was needed.
    Gone,
    TooLarge,
    /// A status and a message for the client.
    Bad(u16, &'static str, String),
}

/// Reads until a complete head (`\r\n\r\n`) is in `buf`; returns its length. Bytes after it
/// (the body's start) stay in `buf`.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, HeadError> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(end + 4);
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Checks a head the way async-h1's decoder does, so that what it would refuse with a closed
/// connection is refused here with a status.
fn check_head(head: &[u8]) -> Result<(), HeadError> {
    if head.len() > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let bad = |m: &str| HeadError::Bad(400, "Bad Request", m.to_string());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("malformed request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(bad(&format!("malformed request head: {e}"))),
    }
    if req.version != Some(1) {
        return Err(HeadError::Bad(505, "HTTP Version Not Supported", "only HTTP/1.1 is served".into()));
    }
    let method = req.method.unwrap_or_default();
    if method.parse::<tide::http::Method>().is_err() {
        return Err(bad(&format!("unknown method {method:?}")));
    }
    let mut host = None;
    let (mut length, mut chunked) = (false, false);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| bad(&format!("header {} is not UTF-8", h.name)))?;
        if h.name.eq_ignore_ascii_case("host") {
            host = Some(value);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            value.trim().parse::<u64>().map_err(|_| bad("invalid Content-Length"))?;
            length = true;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    if length && chunked {
        return Err(bad("both Content-Length and Transfer-Encoding"));
    }
    let host = host.ok_or_else(|| bad("the Host header is missing"))?;
    let path = req.path.unwrap_or_default();
    let url = if path.starts_with('/') {
        format!("http://{host}{path}")
    } else if path.starts_with("http://") || path.starts_with("https://") {
        path.to_string()
    } else {
        return Err(bad("the request target must be a path"));
    };
    tide::http::Url::parse(&url).map_err(|e| bad(&format!("invalid request target or Host: {e}")))?;
    Ok(())
}

/// Writes a one-off response with a JSON error and `Connection: close`.
async fn reply(rt: Rt, stream: &mut TcpStream, status: u16, reason: &str, message: &str) {
    let body = serde_json::json!({ "error": message }).to_string();
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.flush().await;
    };
    future::or(write, rt.sleep(REPLY_TIMEOUT)).await;
}

/// Answers a refused head, then reads what the client still sends (briefly, boundedly) before
/// closing: closing with unread data would reset the connection and lose the answer.
async fn refuse(rt: Rt, mut stream: TcpStream, status: u16, reason: &str, message: &str) {
    reply(rt, &mut stream, status, reason, message).await;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = 1usize << 20;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    future::or(drain, rt.sleep(REPLY_TIMEOUT)).await;
}

/// Refusals with a drain (see [`refuse`]) in progress at once; beyond this a refused
/// connection is closed right after its status line, so a flood cannot hold descriptors here.
const MAX_DRAINING: usize = 32;

/// A connection that has no free slot: a minimal `503`, then close.
pub async fn refuse_busy(rt: Rt, mut stream: TcpStream) {
    static DRAINING: AtomicUsize = AtomicUsize::new(0);
    let message = "too many connections to the REST API; try again";
    if DRAINING.fetch_add(1, Ordering::Relaxed) >= MAX_DRAINING {
        DRAINING.fetch_sub(1, Ordering::Relaxed);
        return reply(rt, &mut stream, 503, "Service Unavailable", message).await;
    }
    rt.detach(async move {
        refuse(rt, stream, 503, "Service Unavailable", message).await;
        DRAINING.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Serves one connection: for each request, a head checked here, then async-h1 and `app`.
pub async fn serve<F, Fut>(rt: Rt, mut stream: TcpStream, slot: Slot, app: F)
where
    F: Fn(tide::http::Request) -> Fut,
    Fut: std::future::Future<Output = tide::http::Result<tide::http::Response>>,
{
    let mut timeout = HEAD_TIMEOUT;
    loop {
        let mut buf = Vec::new();
        slot.set_idle(true);
        let head = future::or(read_head(&mut stream, &mut buf), async {
            future::or(async { slot.evicted.recv().await.map_or((), |_| ()) }, rt.sleep(timeout)).await;
            Err(HeadError::Gone)
        })
        .await;
        slot.set_idle(false);
        let checked = head.and_then(|len| check_head(&buf[..len]));
        match checked {
            Ok(()) => {}
            Err(HeadError::Gone) => return,
            Err(HeadError::TooLarge) => {
                let message = format!("the request head is larger than {MAX_HEAD} bytes");
                return refuse(rt, stream, 431, "Request Header Fields Too Large", &message).await;
            }
            Err(HeadError::Bad(status, reason, message)) => return refuse(rt, stream, status, reason, &message).await,
        }
        let io = Prefixed { head: Arc::new(Mutex::new((buf, 0))), inner: stream.clone() };
        let mut server = async_h1::server::Server::new(io, &app);
        match server.accept_one().await {
            Ok(async_h1::server::ConnectionStatus::KeepAlive) => timeout = KEEP_ALIVE_IDLE,
            _ => return,
        }
    }
}

/// The socket with the bytes already read (a head, maybe a body's start) put back in front.
#[derive(Clone)]
struct Prefixed {
    head: Arc<Mutex<(Vec<u8>, usize)>>,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        {
            let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
            let (bytes, pos) = &mut *head;
            if *pos < bytes.len() {
                let n = buf.len().min(bytes.len() - *pos);
                buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                *pos += n;
                if *pos == bytes.len() {
                    *bytes = Vec::new();
                    *pos = 0;
                }
                return Poll::Ready(Ok(n));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &str) -> Option<u16> {
        match check_head(head.as_bytes()) {
            Ok(()) => None,
            Err(HeadError::TooLarge) => Some(431),
            Err(HeadError::Bad(s, _, _)) => Some(s),
            Err(HeadError::Gone) => Some(0),
        }
    }

    #[test]
    fn heads_async_h1_would_drop_get_a_status() {
        assert_eq!(status("GET /settings HTTP/1.1\r\nHost: 127.0.0.1:8085\r\n\r\n"), None);
        assert_eq!(status("PUT /downloads HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n"), None);
        assert_eq!(status("GET /settings HTTP/1.0\r\nHost: a\r\n\r\n"), Some(505));
        assert_eq!(status("GET /settings HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status("BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n"), Some(400));
        assert_eq!(status("GET settings HTTP/1.1\r\nHost: a\r\n\r\n"), Some(400));
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), Some(400));
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"), Some(400));
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(400)
        );
        assert_eq!(status("\x01\x02 nonsense\r\n\r\n"), Some(400));
        let many: String = (0..200).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")), Some(431));
    }

    #[test]
    fn idle_connections_make_room() {
        let slots = Slots::new(2);
        let a = slots.admit().unwrap();
        let b = slots.admit().unwrap();
        // Both busy: no room.
        assert!(slots.admit().is_none());
        a.set_idle(true);
        b.set_idle(true);
        let c = slots.admit().expect("an idle connection gives way");
        assert!(a.evicted.try_recv().is_ok(), "the oldest idle one is evicted");
        assert!(b.evicted.try_recv().is_err());
        drop(a);
        assert_eq!(slots.live(), 2);
        drop((b, c));
        assert_eq!(slots.live(), 0);
    }
}
