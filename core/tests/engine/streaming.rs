//! Streaming: deadline pieces and seeks come before the rest, even over the memory cap.

use std::time::Duration;

use shoal_core::wire::Message;
use shoal_core::{Instant, TorrentId, BLOCK_SIZE};

use crate::support::{assert_complete, file, TestTorrent, WireEntry, World};

#[test]
fn deadline_pieces_finish_before_most_others_without_sequential_mode() {
    // 200 one-block pieces from one slow seeder: about 8 s of download.
    let tt = TestTorrent::new(15, BLOCK_SIZE, &[file("movie.mkv", 200 * BLOCK_SIZE as u64 - 1000)]);
    let n = tt.pieces();
    let mut w = World::new(15);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(400_000);
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished_pieces(l).len() >= 10);

    let window = n - 12..n - 4;
    assert!(w.nodes[leecher].finished_pieces(l).iter().all(|p| !window.contains(p)), "the window is still missing");
    w.command(leecher, |e, now| e.set_deadline_piece(l, Some(window.start), now)).expect("set_deadline_piece");
    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    let order = w.nodes[leecher].finished_pieces(l);
    let last_of_window = order.iter().rposition(|p| window.contains(p)).expect("window pieces finished");
    // What was already requested when the deadline was set comes first (the queue holds 32
    // blocks at least); then the window.
    assert!(
        last_of_window < 60,
        "window finished at position {last_of_window} of {n}: {:?}",
        &order[..last_of_window + 1]
    );
    assert!(
        w.nodes[leecher].engine.set_deadline_piece(TorrentId(99), None, w.now).is_err(),
        "unknown torrents are an error"
    );
}

#[test]
fn deadline_pieces_are_requested_even_over_the_memory_cap() {
    let piece = 4 * BLOCK_SIZE;
    let tt = TestTorrent::new(16, piece, &[file("movie.mkv", 60 * piece as u64)]);
    let n = tt.pieces();
    let mut w = World::new(16);
    w.tap = true;
    // Writes stall: downloaded pieces stay in memory, the leecher goes over its one-piece cap
    // with its first requests and then asks for nothing new.
    w.timing.write = Some(Duration::from_secs(30));
    let seeder = w.add_node();
    let leecher = w.add_node_with(|c| c.max_in_flight_bytes = piece as u64);
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(10), |w| w.nodes[leecher].stats(l).downloaded >= 2 * piece as u64);
    w.run_for(Duration::from_secs(2));
    let is_request_from_leecher = |e: &WireEntry| e.from.0 == leecher && matches!(e.msg, Message::Request(_));
    let quiet_since = Instant::from_micros(w.now.as_micros() - 1_000_000);
    assert!(
        !w.wire_log.iter().any(|e| e.at >= quiet_since && is_request_from_leecher(e)),
        "precondition: the leecher is over its memory cap and requests nothing"
    );
    assert!(w.nodes[leecher].finished_pieces(l).is_empty());

    let d = n - 5;
    let before = w.nodes[leecher].stats(l).downloaded;
    let set_at = w.now;
    let logged = w.wire_log.len();
    w.command(leecher, |e, now| e.set_deadline_piece(l, Some(d), now)).expect("set_deadline_piece");
    let at_once = w.wire_log[logged..].iter().filter(|e| is_request_from_leecher(e)).count();
    assert!(at_once > 0, "the command itself requests the window, without waiting for a tick");
    w.run_for(Duration::from_millis(100));
    let asked: Vec<u32> = w
        .wire_log
        .iter()
        .filter(|e| e.at >= set_at && is_request_from_leecher(e))
        .filter_map(|e| match e.msg {
            Message::Request(b) => Some(b.piece),
            _ => None,
        })
        .collect();
    assert!(asked.iter().all(|p| (d..n).contains(p)), "only window pieces over the cap: {asked:?}");
    let requested_before: Vec<u32> = w
        .wire_log
        .iter()
        .filter(|e| e.at < set_at && is_request_from_leecher(e))
        .filter_map(|e| match e.msg {
            Message::Request(b) => Some(b.piece),
            _ => None,
        })
        .collect();
    for p in d..n {
        assert!(asked.contains(&p) || requested_before.contains(&p), "window piece {p} was never requested");
    }
    let got = w.nodes[leecher].stats(l).downloaded - before;
    assert_eq!(got, asked.len() as u64 * BLOCK_SIZE as u64, "every requested block arrived");
}

#[test]
fn a_seek_jumps_the_request_queue() {
    // 100 pieces of 64 KiB from a 1 MB/s seeder: the leecher keeps about 2 s of requests queued.
    let piece = 4 * BLOCK_SIZE;
    let tt = TestTorrent::new(24, piece, &[file("movie.mkv", 200 * piece as u64)]);
    let n = tt.pieces();
    let mut w = World::new(24);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(1_000_000);
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    // Long enough for the request queue to grow to its rate-sized length.
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished_pieces(l).len() >= 80);

    let target = n - 5;
    assert!(!w.nodes[leecher].finished_pieces(l).contains(&target));
    let asked = w.now;
    w.command(leecher, |e, now| e.set_deadline_piece(l, Some(target), now)).expect("set_deadline_piece");
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].finished_pieces(l).contains(&target));
    let waited = w.now - asked;
    // 64 KiB at 1 MB/s is 66 ms, but what the seeder has already read into its send buffer
    // (1 MiB, about 1 s here) still comes first. Without the cancels the queued requests
    // come first too: 2.0 s.
    assert!(waited < Duration::from_millis(1500), "the seek waited {waited:?}");

    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
}
