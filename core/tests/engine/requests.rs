//! The request queue: its length follows each peer's rate, a slow seeder's upload queue stays
//! short, and requests given up on are asked for again when wanted.

use std::time::Duration;

use shoal_core::wire::Message;
use shoal_core::{FilePriority, TorrentId};

use crate::support::{assert_complete, file, NodeId, RawSeeder, TestTorrent, World, PIECE};

#[test]
fn blocks_asked_for_when_the_rest_was_skipped_are_asked_for_again_when_wanted_again() {
    // 8 pieces of 2 blocks: the leecher asks the silent seeder for all 16 at once.
    let tt = TestTorrent::new(34, PIECE, &[file("a.bin", 8 * PIECE as u64)]);
    let RawSeeder { world: mut w, leecher, torrent: l, raw } = RawSeeder::new(34, &tt, |_| {});
    w.run_for(Duration::from_secs(1));
    let mut asked = w.sent_to(raw, |m| matches!(m, Message::Request(_)));
    asked.sort();
    assert_eq!(asked.len(), 16);
    // Skipping the only file finishes the torrent, which cancels every request.
    w.command(leecher, |e, now| e.set_file_priority(l, 0, FilePriority::Skip, now)).expect("skip");
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].finished(l));
    w.run_until(Duration::from_secs(5), |w| w.sent_to(raw, |m| matches!(m, Message::Cancel(_))).len() == 16);
    // Wanted again: the same blocks are asked for again.
    w.command(leecher, |e, now| e.set_file_priority(l, 0, FilePriority::Normal, now)).expect("want");
    w.run_until(Duration::from_secs(5), |w| w.sent_to(raw, |m| matches!(m, Message::Request(_))).len() == 32);
    let mut again = w.sent_to(raw, |m| matches!(m, Message::Request(_)))[16..].to_vec();
    again.sort();
    assert_eq!(again, asked);
}

#[test]
fn a_slow_seeder_queues_seconds_of_upload_not_megabytes() {
    // Six leechers on a 64 kB/s seeder. With a megabyte queued per peer, a request would
    // wait the better part of a minute behind the others' blocks, and leechers would give up
    // on it (30 s) and ask again.
    let tt = TestTorrent::new(32, PIECE, &[file("a.bin", 2 << 20)]);
    let mut w = World::new(32);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(64_000);
    w.seed(seeder, &tt);
    let leechers: Vec<(NodeId, TorrentId)> = (0..6)
        .map(|_| {
            let n = w.add_node();
            (n, w.leech(n, &tt))
        })
        .collect();
    let mut worst = Duration::ZERO;
    w.run_until(Duration::from_secs(60), |w| {
        // Past the first seconds, when no rate is known yet.
        if w.now.as_micros() > 15_000_000 {
            worst = worst.max(w.uplink_backlog(seeder));
        }
        w.now.as_micros() > 60_000_000
    });
    assert!(worst < Duration::from_secs(10), "the seeder's uplink had {worst:?} of data queued");
    w.run_until(Duration::from_secs(600), |w| leechers.iter().all(|&(n, t)| w.nodes[n].finished(t)));
    for &(n, t) in &leechers {
        assert_complete(&w, n, t, &tt);
    }
}

#[test]
fn request_queue_to_a_fast_peer_grows_before_its_rate_is_known() {
    // The rate takes two ticks to measure; held to the minimum queue until then, a fast
    // seeder spent most of a 1 GiB download waiting for requests.
    let tt = TestTorrent::new(18, 256 * 1024, &[file("big.bin", 32 << 20)]);
    let mut w = World::new(18);
    w.tap = true;
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_for(Duration::from_millis(900));
    let min = shoal_core::Config::default().initial_requests_per_peer as i64;
    let most = w.max_outstanding(leecher, w.now);
    assert!(most >= 4 * min, "at most {most} requests outstanding in the first 0.9 s");
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
}

#[test]
fn request_queue_to_a_slow_peer_follows_its_rate_once_known() {
    let tt = TestTorrent::new(19, 256 * 1024, &[file("big.bin", 8 << 20)]);
    let mut w = World::new(19);
    w.tap = true;
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(100_000);
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_for(Duration::from_secs(8));
    // Asked of the engine: the wire count would still hold the requests it gave back.
    let outstanding: usize = w.nodes[leecher].engine.peers(l).iter().map(|p| p.outstanding_requests).sum();
    let start = shoal_core::Config::default().initial_requests_per_peer;
    // 100 kB/s is 6 blocks a second: two seconds of it and a round trip stay well under
    // the queue it started with (its rate, measured from the 256 KiB bursts of this world's
    // links, looks higher than it is).
    assert!(outstanding < start, "{outstanding} requests outstanding to a 100 kB/s peer after 8 s");
}
