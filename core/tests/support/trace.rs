//! The trace's lines: one per output of an engine, whose digest is a run's fingerprint.

use sha1::{Digest, Sha1};

use shoal_core::{DiskJob, DiskJobKind, Output, PeerIo};

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
