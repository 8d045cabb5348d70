//! Downloads run to completion: byte-exact data in files of any shape, skipped files, pieces
//! swapped among leechers, writes and hashes, and runs that are a pure function of the seed.

use std::time::Duration;

use shoal_core::{AddTorrent, Event, FilePriority, TorrentState, BLOCK_SIZE};

use crate::support::{assert_complete, file, pad, plain_torrent, swarm_trace, Disk, NodeId, TestTorrent, World, PIECE};

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

#[test]
fn three_leechers_complete_and_trade_pieces_among_themselves() {
    let tt = plain_torrent(2);
    let mut w = World::new(2);
    let seeder = w.add_node();
    // A slow seeder: leechers must get much of the torrent from each other.
    w.nodes[seeder].uplink.rate = Some(200_000);
    let s = w.seed(seeder, &tt);
    let leechers: Vec<NodeId> = (0..3).map(|_| w.add_node()).collect();
    let ts: Vec<_> = leechers.iter().map(|&n| w.leech(n, &tt)).collect();

    w.run_until(Duration::from_secs(120), |w| leechers.iter().zip(&ts).all(|(&n, &t)| w.nodes[n].finished(t)));

    for (&n, &t) in leechers.iter().zip(&ts) {
        assert_complete(&w, n, t, &tt);
    }
    let uploads: Vec<u64> = leechers.iter().zip(&ts).map(|(&n, &t)| w.nodes[n].stats(t).uploaded).collect();
    assert!(uploads.iter().any(|u| *u > 0), "some leecher uploaded: {uploads:?}\n{}", w.summary());
    let seeder_up = w.nodes[seeder].stats(s).uploaded;
    let total = tt.data.len() as u64;
    assert!(seeder_up < 3 * total, "the seeder did not send everything thrice: {seeder_up}");
}

#[test]
fn skipped_file_is_not_downloaded() {
    let tt = TestTorrent::new(4, PIECE, &[file("a.bin", 100_000), file("skip.bin", 300_000), file("c.bin", 90_001)]);
    let mut w = World::new(4);
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let params = AddTorrent {
        file_priorities: vec![FilePriority::Normal, FilePriority::Skip, FilePriority::Normal],
        ..AddTorrent::new(tt.meta.clone())
    };
    let l = w.add_torrent(leecher, params, Disk::empty(&tt.meta));

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    let node = &w.nodes[leecher];
    let st = node.stats(l);
    assert_eq!(st.state, TorrentState::Seeding);
    assert_eq!(st.have_bytes, st.wanted_bytes);
    let (f0, f2) = (tt.file_pieces(0), tt.file_pieces(2));
    let exclusive: Vec<u32> = tt.file_pieces(1).filter(|p| !f0.contains(p) && !f2.contains(p)).collect();
    assert!(exclusive.len() >= 5, "the test torrent has pieces only the skipped file covers");
    let wanted: u64 = (0..tt.pieces()).filter(|p| !exclusive.contains(p)).map(|p| tt.piece_range(p).len() as u64).sum();
    assert_eq!(st.wanted_bytes, wanted);
    let disk = node.disk(l);
    for p in &exclusive {
        assert!(!disk.written_pieces.contains(p), "skipped piece {p} was written");
        assert_eq!(disk.written_in(tt.piece_range(*p)), 0, "skipped piece {p} has bytes on disk");
    }
    let contents = disk.contents();
    for f in [0, 2] {
        let r = tt.file_range(f);
        assert!(contents[r.clone()] == tt.data[r], "file {f} is exact");
    }
    assert!(st.downloaded <= wanted + 4 * BLOCK_SIZE as u64, "downloaded {} of {wanted} wanted", st.downloaded);
}

#[test]
fn every_downloaded_piece_is_reported_once_after_its_write() {
    let tt = plain_torrent(14);
    let mut w = World::new(14);
    w.timing.disk = Duration::from_millis(50);
    w.keep_trace = true;
    let seeder = w.add_node();
    let leecher = w.add_node();
    let s = w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    let mut got = w.nodes[leecher].finished_pieces(l);
    got.sort();
    assert_eq!(got, (0..tt.pieces()).collect::<Vec<_>>(), "each piece reported exactly once");
    assert!(w.nodes[seeder].finished_pieces(s).is_empty(), "pieces found by the check are not reported one by one");
    // The event waits for the write: it comes a disk latency after the Write job was issued.
    for (at, e) in &w.nodes[leecher].events {
        let Event::PieceFinished { piece, .. } = e else { continue };
        let issued = w
            .trace_lines
            .iter()
            .find_map(|line| {
                let mut f = line.split(' ');
                let (time, node, kind) = (f.next()?, f.next()?, f.next()?);
                let (_job, _t, p) = (f.next()?, f.next()?, f.next()?);
                let ours = node == leecher.to_string() && kind == "Write" && p == piece.to_string();
                ours.then(|| time.parse::<u64>().ok()).flatten()
            })
            .expect("a Write job for every finished piece");
        assert!(
            at.as_micros() >= issued + 50_000,
            "piece {piece} reported at {at:?}, its write was issued at {issued} us"
        );
    }
}

#[test]
fn a_hash_job_that_writes_the_piece_saves_the_write_job() {
    let tt = plain_torrent(16);
    let mut w = World::new(16);
    w.timing.hash_writes = true;
    w.keep_trace = true;
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    let disk = w.nodes[leecher].disk(l);
    assert_eq!(disk.written_pieces.len(), tt.pieces() as usize, "each piece written once, by its hash job");
    let kinds = |kind: &str| {
        w.trace_lines
            .iter()
            .filter(|line| {
                let mut f = line.split(' ');
                f.nth(1) == Some(&leecher.to_string()) && f.next() == Some(kind)
            })
            .count()
    };
    assert_eq!(kinds("Hash"), tt.pieces() as usize);
    assert_eq!(kinds("Write"), 0, "no separate write job");
}

#[test]
fn same_seed_same_outputs_other_seed_other_outputs() {
    let a = swarm_trace(10);
    let b = swarm_trace(10);
    assert!(a.1 > 300, "a real swarm ran: {} outputs", a.1);
    assert_eq!(a, b, "two runs with one seed differ");
    let c = swarm_trace(11);
    assert_ne!(a.0, c.0, "another seed gives another run");
}
