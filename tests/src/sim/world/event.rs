//! The world's events: everything that can happen, in the queue until its time comes.

use std::ops::Range;

use shoal_core::{ExchangeId, Instant, JobId, JobResult, TransportError};

use crate::sim::oracle::MessageCounts;

/// Everything that can happen in the world, in the queue until its time comes.
#[derive(Debug)]
pub(super) enum Ev {
    Timer {
        host: usize,
        epoch: u32,
    },
    DialArrive {
        c: u64,
    },
    Connected {
        c: u64,
    },
    Refused {
        c: u64,
    },
    /// A sender waiting for room in its kernel buffer may find some now.
    Room {
        c: u64,
        side: usize,
    },
    /// Bytes arrive; the receiver reads them in `pieces`, as from a socket. `counts`: the
    /// messages sent up to their end (the receiver has read those once they are in).
    Deliver {
        c: u64,
        side: usize,
        data: Vec<u8>,
        pieces: Vec<Range<usize>>,
        counts: MessageCounts,
    },
    Fin {
        c: u64,
        side: usize,
    },
    /// A datagram from host `src` at `from` arrives at host `to`'s downlink (`queued` false),
    /// or has come through it to the host's UDP socket.
    Datagram {
        src: usize,
        to: usize,
        from: std::net::SocketAddr,
        data: Vec<u8>,
        queued: bool,
    },
    Job {
        host: usize,
        epoch: u32,
        job: JobId,
        result: JobResult,
    },
    Http {
        host: usize,
        epoch: u32,
        job: JobId,
        result: Result<Vec<u8>, TransportError>,
    },
    Udp {
        host: usize,
        epoch: u32,
        job: ExchangeId,
        data: Vec<u8>,
    },
    Resume {
        host: usize,
        epoch: u32,
    },
    Checkpoint,
    AdvTick {
        host: usize,
    },
    AdvDial {
        host: usize,
        target: usize,
    },
    Crash {
        host: usize,
        clean: bool,
    },
    Rejoin {
        host: usize,
    },
    Partition {
        a: usize,
        b: usize,
        until: Instant,
    },
    ResetRandom,
    /// The user at an honest host does something (see [`Faults::commands`](crate::sim::Faults::commands)).
    Command {
        host: usize,
    },
    FaultsOff,
}
