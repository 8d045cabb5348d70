//! Whole-engine behaviour in a deterministic simulated world (see `support`): swarms of engines
//! exchanging real wire bytes over a virtual network, with in-memory disks and a fake tracker.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::wire::Handshake;
use shoal_core::{AddTorrent, Bitfield, Event, FilePriority, InfoHash, Output, PeerId, TorrentState, BLOCK_SIZE};
use support::{file, pad, Disk, TestTorrent, World};

const PIECE: u32 = 32 * 1024;

/// A 1 MiB-ish single-directory torrent of plain files.
fn plain_torrent(seed: u64) -> TestTorrent {
    TestTorrent::new(seed, PIECE, &[file("a.bin", 700_001), file("b.bin", 300_000)])
}

/// Asserts a torrent is complete on a node: finished, seeding, every wanted byte verified and
/// the disk holding exactly the source bytes.
fn assert_complete(w: &World, node: usize, t: shoal_core::TorrentId, tt: &TestTorrent) {
    let n = &w.nodes[node];
    assert!(n.finished(t), "node {node} finished\n{}", w.summary());
    let st = n.stats(t);
    assert_eq!(st.state, TorrentState::Seeding, "node {node}");
    assert_eq!(st.have_bytes, st.wanted_bytes, "node {node}");
    assert_eq!(st.pieces_have, tt.pieces(), "node {node}");
    assert!(n.disk(t).contents() == tt.data, "node {node}: disk bytes differ from the source");
}

#[test]
fn leecher_gets_an_odd_multi_file_torrent_byte_exact() {
    // An empty file, a 1-byte file, a pad file aligning the next file, an odd total length.
    let first = 100_000u64 + 1;
    let pad_len = PIECE as u64 - first % PIECE as u64;
    let tt = TestTorrent::new(
        1,
        PIECE,
        &[
            file("a.bin", 100_000),
            file("empty.txt", 0),
            file("one.txt", 1),
            pad(".pad/0", pad_len),
            file("c.bin", 77_777),
        ],
    );
    assert_eq!(tt.data.len() % 2, 1, "odd total length");

    let mut w = World::new(1);
    let seeder = w.add_node();
    let leecher = w.add_node();
    let s = w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    let total = tt.pieces();
    assert!(w.nodes[seeder].saw(|e| *e == Event::Checked { torrent: s, have: total, total }));
    assert!(w.nodes[leecher].saw(|e| *e == Event::Checked { torrent: l, have: 0, total }));
    assert_complete(&w, leecher, l, &tt);
    let st = w.nodes[leecher].stats(l);
    assert_eq!(st.wanted_bytes, tt.data.len() as u64);
    let disk = w.nodes[leecher].disk(l);
    assert_eq!(disk.written_bytes(3), 0, "pad file never written");
    assert_eq!(disk.pad_writes, 0, "pad spans carried only zeros");
    assert_eq!(disk.written_pieces.len(), total as usize, "each piece written once");
}
