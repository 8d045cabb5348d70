//! `GET /downloads/{infohash}/stream/{fileindex}`: one file over HTTP with byte ranges, while
//! it downloads. The piece at the read position is asked for first (the engine's deadline
//! window); a read of data not yet verified waits for it instead of failing.
//!
//! Ranges follow RFC 9110: `bytes=a-b`, `bytes=a-`, `bytes=-n`; a satisfiable range gets 206
//! with `Content-Range: bytes a-b/size`, an unsatisfiable one 416 with `bytes */size`, no
//! `Range` 200 with the whole file. (Tribler's own answer is always 206 with a non-standard
//! `Content-Range`; players need the standard one.)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::{AsyncRead, Stream};
use shoal_core::Event;
use shoal_core::InfoHash;

use super::Library;
use crate::rt::Rt;

/// A byte range of a file, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeReq {
    /// No (usable) `Range` header: the whole file, 200.
    Full,
    /// `start..end` of the file, 206.
    Part { start: u64, end: u64 },
    /// Nothing of the file can satisfy it: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header for a file of `size` bytes. Only the first range of a list is
/// served; a header that is not a byte range is ignored (the whole file), as RFC 9110 allows.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeReq {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return RangeReq::Full };
    let first = spec.split(',').next().unwrap_or("").trim();
    let Some((a, b)) = first.split_once('-') else { return RangeReq::Full };
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), b.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match b.parse::<u64>() {
            Ok(0) => RangeReq::Unsatisfiable,
            Ok(_) if size == 0 => RangeReq::Unsatisfiable,
            Ok(n) => RangeReq::Part { start: size.saturating_sub(n), end: size },
            Err(_) => RangeReq::Full,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else { return RangeReq::Full };
            let last = if b.is_empty() {
                u64::MAX
            } else {
                match b.parse::<u64>() {
                    Ok(l) if l >= start => l,
                    _ => return RangeReq::Full,
                }
            };
            if start >= size {
                return RangeReq::Unsatisfiable;
            }
            RangeReq::Part { start, end: last.saturating_add(1).min(size) }
        }
        (true, true) => RangeReq::Full,
    }
}

/// Most bytes read from disk at once.
const CHUNK: u64 = 1 << 20;

/// Where a stream reads: a file of a download, `start..end` of it.
pub struct Span {
    /// The download.
    pub ih: InfoHash,
    /// The file's index in the torrent.
    pub file: usize,
    /// First byte.
    pub start: u64,
    /// End of the range (exclusive).
    pub end: u64,
}

/// Produces the span into `tx`, waiting for pieces as needed. Ends when the range is done,
/// the client is gone (`gone` closes with the [`ChunkReader`]), or the download is removed.
pub async fn produce(library: Library, rt: Rt, span: Span, tx: Sender<io::Result<Vec<u8>>>, gone: Receiver<()>) {
    let Span { ih, file, start, end } = span;
    let session = library.session().clone();
    let events = session.subscribe().await;
    let mut pos = start;
    while pos < end {
        let Some(d) = library.get(&ih).await else {
            let _ = tx.send(Err(io::Error::other("the download was removed"))).await;
            return;
        };
        let Some(meta) = d.meta.clone() else { return };
        let Some(f) = meta.info.files.get(file) else { return };
        let plen = meta.info.piece_length as u64;
        let abs = f.offset + pos;
        let piece = (abs / plen) as u32;
        let piece_end_in_file = ((piece as u64 + 1) * plen).saturating_sub(f.offset);
        let chunk_end = end.min(piece_end_in_file).min(pos + CHUNK);

        let id = d.torrent_id();
        let have = match id {
            Some(id) => session.has_piece(id, piece).await,
            None => false,
        };
        if !have {
            if let Some(id) = id {
                let _ = session.set_deadline_piece(id, Some(piece)).await;
            }
            // Wait for a piece to finish (or anything else to change), then look again.
            let wait = async {
                loop {
                    match events.recv().await {
                        Ok(Event::PieceFinished { piece: p, .. }) if p == piece => return,
                        Ok(Event::Finished { .. } | Event::Checked { .. } | Event::Removed { .. }) => return,
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            };
            // The client hung up: stop waiting (nothing is ever sent on `gone`; it closes).
            let closed = async {
                let _ = gone.recv().await;
            };
            futures_lite::future::or(wait, futures_lite::future::or(closed, rt.sleep(Duration::from_secs(2)))).await;
            if tx.is_closed() {
                return;
            }
            continue;
        }
        let path = d.resume.destination.join(f.relative_path());
        let len = (chunk_end - pos) as usize;
        let at = pos;
        let read = rt
            .unblock(move || {
                use std::os::unix::fs::FileExt;
                let file = std::fs::File::open(&path)?;
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, at)?;
                Ok::<_, io::Error>(buf)
            })
            .await;
        let failed = read.is_err();
        if tx.send(read).await.is_err() || failed {
            return;
        }
        pos = chunk_end;
    }
    // Done with this stream: let the rest of the torrent go first again.
    if let Some(id) = library.get(&ih).await.and_then(|d| d.torrent_id()) {
        let _ = session.set_deadline_piece(id, None).await;
    }
}

/// The response body: the chunks a [`produce`] task sends.
pub struct ChunkReader {
    rx: Pin<Box<Receiver<io::Result<Vec<u8>>>>>,
    chunk: Vec<u8>,
    pos: usize,
    /// Dropped with the reader (the client hung up or the answer is done): the producer's
    /// `gone` then closes.
    _alive: Sender<()>,
}

impl ChunkReader {
    /// A reader, the sender its producer fills, and what closes when the reader is dropped.
    pub fn new() -> (ChunkReader, Sender<io::Result<Vec<u8>>>, Receiver<()>) {
        let (tx, rx) = async_channel::bounded(4);
        let (alive, gone) = async_channel::bounded(1);
        (ChunkReader { rx: Box::pin(rx), chunk: Vec::new(), pos: 0, _alive: alive }, tx, gone)
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if this.pos < this.chunk.len() {
                let n = buf.len().min(this.chunk.len() - this.pos);
                buf[..n].copy_from_slice(&this.chunk[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(n));
            }
            match this.rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(c))) => {
                    this.chunk = c;
                    this.pos = 0;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(0)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeReq::*;
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(Some("bytes=10-19"), 100), Part { start: 10, end: 20 });
        assert_eq!(parse_range(Some("bytes=10-"), 100), Part { start: 10, end: 100 });
        assert_eq!(parse_range(Some("bytes=90-200"), 100), Part { start: 90, end: 100 });
        assert_eq!(parse_range(Some("bytes=-10"), 100), Part { start: 90, end: 100 });
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Part { start: 0, end: 100 });
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-1"), 100), Full);
        assert_eq!(parse_range(Some("items=1-2"), 100), Full);
        assert_eq!(parse_range(Some("bytes=0-0,5-6"), 100), Part { start: 0, end: 1 });
        assert_eq!(parse_range(Some("bytes=x-"), 100), Full);
    }
}
