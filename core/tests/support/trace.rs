//! The trace: a digest of every output of every engine (a run's fingerprint), and its lines.

use std::net::SocketAddr;

use sha1::{Digest, Sha1};

use shoal_core::{DiskJob, DiskJobKind, Instant, Output, PeerIo};

use super::node::NodeId;
use super::world::World;

impl World {
    /// Digest of every output so far (time, node and a summary of each).
    pub(crate) fn trace_digest(&self) -> [u8; 20] {
        self.trace.clone().finalize().into()
    }

    /// Adds an output of `node` to the trace.
    pub(super) fn record(&mut self, node: NodeId, out: &Output) {
        let line = format!("{} {node} {}", self.now.as_micros(), describe(out));
        self.trace.update(line.as_bytes());
        self.trace.update(b"\n");
        self.trace_len += 1;
        if self.keep_trace {
            self.trace_lines.push(line);
        }
    }

    /// With `keep_trace`: when `node` asked the runtime to dial `addr`, if it did.
    pub(crate) fn dialled(&self, node: NodeId, addr: SocketAddr) -> Option<Instant> {
        let (connect, to) = (format!(" {node} Connect {{ conn: ConnId("), format!("addr: {addr} }}"));
        let line = self.trace_lines.iter().find(|t| t.contains(&connect) && t.contains(&to))?;
        let micros = line.split(' ').next()?.parse().ok()?;
        Some(Instant::from_micros(micros))
    }
}

/// A one-line summary of an output; payloads are replaced by their length and a digest.
pub(crate) fn describe(out: &Output) -> String {
    fn digest(data: &[u8]) -> String {
        Sha1::digest(data)[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
    match out {
        Output::Peer(PeerIo::Send { conn, data }) => format!("Send {conn:?} {} {}", data.len(), digest(data)),
        Output::Disk(DiskJob { id, torrent, kind: DiskJobKind::Write { piece, spans, data } }) => {
            format!("Write {id:?} {torrent:?} {piece} {spans:?} {}", digest(data))
        }
        Output::Hash(h) => format!("Hash {:?} {:?} {} {}", h.id, h.torrent, h.piece, digest(&h.data)),
        // The transport's own variant leads the line ("Connect { .. }"), as tests look for it.
        Output::Peer(p) => format!("{p:?}"),
        Output::Udp(u) => format!("{u:?}"),
        other => format!("{other:?}"),
    }
}
