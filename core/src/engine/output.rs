//! What the engine asks of the runtime, and what the runtime answers for disk and hash jobs.

use std::net::SocketAddr;

use crate::storage::FileSpan;
use crate::types::{BlockRef, ConnId, ExchangeId, JobId, PieceHash, TorrentId};

use super::close_reason::CloseReason;
use super::disk_error::DiskError;

use super::event::Event;

/// A disk operation for the runtime to run (off the engine's thread).
#[derive(Debug)]
pub struct DiskJob {
    /// Completion id, passed back in [`Input::Job`](crate::Input::Job).
    pub id: JobId,
    /// The torrent whose files are meant.
    pub torrent: TorrentId,
    /// What to do.
    pub kind: DiskJobKind,
}

impl DiskJob {
    /// The answer to this job when it could not run at all (no storage, or its files are
    /// gone): every kind fails with `error`, and a write gives its buffer back.
    pub fn fail(self, error: DiskError) -> JobResult {
        match self.kind {
            DiskJobKind::Write { data, .. } => JobResult::Written { result: Err(error), data },
            DiskJobKind::Read { .. } => JobResult::Read(Err(error)),
            DiskJobKind::Verify { .. } => JobResult::Verified(Err(error)),
        }
    }
}

/// The kinds of disk operation.
#[derive(Debug)]
pub enum DiskJobKind {
    /// Write `data` (one verified piece) to `spans` in order; pad spans are skipped.
    /// Answer with [`JobResult::Written`].
    Write {
        /// The piece.
        piece: u32,
        /// Where its bytes go.
        spans: Vec<FileSpan>,
        /// The piece's bytes.
        data: Vec<u8>,
    },
    /// Read a range of one piece (consecutive blocks a peer asked for) into a buffer ready to
    /// send: `len` bytes, each span's bytes at its `at`, pad spans as zeros. The gaps between
    /// spans belong to the engine, which writes message headers there, so the block data is
    /// never copied again. Answer with [`JobResult::Read`] and that buffer (see
    /// [`lay_out_read`] for a runtime that reads the range in one piece).
    Read {
        /// The range.
        block: BlockRef,
        /// Length of the buffer to answer with.
        len: usize,
        /// Where the range's bytes are, in order, and where each goes in the buffer.
        spans: Vec<PlacedSpan>,
    },
    /// Read a piece and compare its SHA-1 with `expected` (checking existing data).
    /// Answer with [`JobResult::Verified`].
    Verify {
        /// The piece.
        piece: u32,
        /// Where its bytes are.
        spans: Vec<FileSpan>,
        /// Its expected hash.
        expected: PieceHash,
    },
}

/// A file span of a [`DiskJobKind::Read`] and where its bytes go in the answer's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacedSpan {
    /// Offset in the buffer of the span's first byte.
    pub at: usize,
    /// The bytes to read.
    pub span: FileSpan,
}

/// Lays out the bytes of a whole read range (`range`, read contiguously) as a
/// [`DiskJobKind::Read`] answer wants them: `len` bytes with each span's bytes at its `at`.
/// `None` if `range` is not exactly as long as the spans.
pub fn lay_out_read(spans: &[PlacedSpan], len: usize, range: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    let mut pos = 0usize;
    for s in spans {
        let n = s.span.len as usize;
        let src = range.get(pos..pos + n)?;
        out.get_mut(s.at..s.at + n)?.copy_from_slice(src);
        pos += n;
    }
    (pos == range.len()).then_some(out)
}

/// Hash a downloaded piece (on a worker, not the engine's thread) and, if it matches, write
/// it to `write`. Answer with [`JobResult::Hashed`], giving the buffer back.
#[derive(Debug)]
pub struct HashJob {
    /// Completion id.
    pub id: JobId,
    /// The torrent.
    pub torrent: TorrentId,
    /// The piece.
    pub piece: u32,
    /// The piece's bytes.
    pub data: Vec<u8>,
    /// Its expected hash.
    pub expected: PieceHash,
    /// Where a matching piece goes, in order; pad spans are skipped. Writing it in the same job
    /// saves a hand-off to the engine and back per piece. A runtime may leave the write to the
    /// engine instead (answer `written: None`): it then asks with a [`DiskJobKind::Write`].
    pub write: Vec<FileSpan>,
}

/// Completion of a [`DiskJob`] or [`HashJob`].
#[derive(Debug)]
pub enum JobResult {
    /// A `Write` finished; the job's buffer comes back for the engine to reuse.
    Written {
        /// What happened.
        result: Result<(), DiskError>,
        /// The buffer of the job (an empty one if the runtime kept it).
        data: Vec<u8>,
    },
    /// A `Read` finished with its buffer, laid out as the job asked.
    Read(Result<Vec<u8>, DiskError>),
    /// A `Verify` finished: whether the piece matched.
    Verified(Result<bool, DiskError>),
    /// A hash job finished: whether it matched, how writing it went, and the buffer back.
    Hashed {
        /// The piece matched its hash.
        ok: bool,
        /// The buffer of the job.
        data: Vec<u8>,
        /// The write of a matching piece to the job's `write` spans; `None` if it did not
        /// match or the runtime left the write to the engine.
        written: Option<Result<(), DiskError>>,
    },
}

/// What the engine asks of the runtime, grouped by transport.
#[derive(Debug)]
pub enum Output {
    /// Work on a peer connection (TCP).
    Peer(PeerIo),
    /// Work on a UDP socket: the DHT's, Local Service Discovery's, or a UDP tracker exchange's.
    Udp(UdpIo),
    /// Resolve a DHT bootstrap host name; answer with [`Input::Resolved`](crate::Input::Resolved).
    Resolve {
        /// The host name.
        host: String,
        /// Its UDP port.
        port: u16,
    },
    /// GET this URL (an HTTP tracker announce, scrape or health check) and answer with
    /// [`Input::Http`](crate::Input::Http).
    Http {
        /// Completion id.
        id: JobId,
        /// Full URL, query included.
        url: String,
    },
    /// Run a disk job; answer with [`Input::Job`](crate::Input::Job).
    Disk(DiskJob),
    /// Run a hash job; answer with [`Input::Job`](crate::Input::Job).
    Hash(HashJob),
    /// Tell the application.
    Event(Event),
}

/// Work on a peer connection.
#[derive(Debug)]
pub enum PeerIo {
    /// Open a TCP connection; answer with [`Input::Connected`](crate::Input::Connected) or [`Input::Closed`](crate::Input::Closed).
    Connect {
        /// The connection's id.
        conn: ConnId,
        /// Where to.
        addr: SocketAddr,
    },
    /// Write these bytes on the connection, in order; report progress with [`Input::Sent`](crate::Input::Sent).
    Send {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Close the connection. The engine has already forgotten it.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why the engine closes it.
        reason: CloseReason,
    },
}

/// Work on a UDP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpIo {
    /// Send one datagram from the DHT socket (the one bound to the listen port); what arrives
    /// there goes back as [`Input::Datagram`](crate::Input::Datagram) with [`Socket::Dht`](crate::Socket::Dht).
    Dht {
        /// Where to.
        to: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Send one Local Service Discovery announce to the multicast group (BEP 14), from the
    /// socket bound to [`crate::lsd::PORT`]; what arrives there goes back as
    /// [`Input::Datagram`](crate::Input::Datagram) with [`Socket::Lsd`](crate::Socket::Lsd). A runtime without IPv6 multicast drops `v6`
    /// ones.
    Lsd {
        /// The datagram.
        data: Vec<u8>,
        /// For the IPv6 group `[ff15::efc0:988f]:6771` rather than `239.192.152.143:6771`.
        v6: bool,
    },
    /// Send a datagram to `host:port` from a socket kept for the UDP tracker exchange; pass
    /// every datagram that socket receives (or why it failed) as [`Input::Exchange`](crate::Input::Exchange).
    Exchange {
        /// The exchange.
        exchange: ExchangeId,
        /// Tracker host name or address.
        host: String,
        /// Tracker port.
        port: u16,
        /// The datagram.
        data: Vec<u8>,
    },
    /// The exchange is over: drop its socket.
    EndExchange {
        /// The exchange.
        exchange: ExchangeId,
    },
}
