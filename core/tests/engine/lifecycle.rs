//! Pause, resume, removal and shutdown while transfers, verifications and announces are under way.

use std::time::Duration;

use shoal_core::{Event, TorrentState};

use crate::support::{assert_complete, file, plain_torrent, TestTorrent, World};

/// Found by `shoal-sim --seeds` (seed 2563 and seven others): a piece that completed while the
/// torrent was not active set "finished" without announcing it, so `Finished` never came, even
/// after the torrent resumed as a seed.
#[test]
fn the_last_piece_verified_while_paused_is_announced_on_resume() {
    let tt = plain_torrent(20);
    let mut w = World::new(20);
    w.timing.hash_writes = true;
    w.timing.hash = Duration::from_secs(3);
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    // Every block is in once the last outstanding request is answered; the hashes take 3 s.
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].stats(l).downloaded >= tt.data.len() as u64);
    assert!(!w.nodes[leecher].finished(l), "the pieces are still being verified");
    w.command(leecher, |e, now| e.pause(l, now)).expect("pause");

    w.run_for(Duration::from_secs(10));
    assert_eq!(w.nodes[leecher].stats(l).pieces_have, tt.pieces(), "the verifications under way completed");
    assert!(!w.nodes[leecher].finished(l), "not announced while paused");

    w.command(leecher, |e, now| e.resume(l, now)).expect("resume");
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
    // The `started` of the resumed session says `left=0`: the tracker knows we seed.
    w.run_for(Duration::from_secs(5));
    let (_, last) = w.nodes[leecher].tracker_gets.last().expect("announces");
    assert!(last.contains("event=started") && last.contains("left=0"), "{last}");
}

#[test]
fn pause_closes_peers_and_stops_the_download_resume_finishes_it() {
    let tt = plain_torrent(6);
    let mut w = World::new(6);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(100_000);
    let leecher = w.add_node();
    let s = w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].stats(l).pieces_have >= 5);
    let peers = w.nodes[leecher].stats(l).peers;
    assert!(peers > 0);
    let closes_before = w.nodes[leecher].closes.len();
    w.command(leecher, |e, now| e.pause(l, now)).expect("pause");
    assert_eq!(w.nodes[leecher].closes.len() - closes_before, peers, "one Close per connected peer");
    let st = w.nodes[leecher].stats(l);
    assert_eq!(st.state, TorrentState::Paused);
    assert_eq!(st.peers, 0);

    w.run_for(Duration::from_secs(30));
    let after = w.nodes[leecher].stats(l);
    assert_eq!(after.pieces_have, st.pieces_have, "no pieces while paused");
    assert_eq!(after.downloaded, st.downloaded, "no payload while paused");
    assert_eq!(w.nodes[seeder].stats(s).peers, 0, "the seeder saw the connection go");
    assert!(w.nodes[leecher].tracker_gets.iter().any(|(_, u)| u.contains("event=stopped")));
    assert!(!w.nodes[leecher].finished(l));

    w.command(leecher, |e, now| e.resume(l, now)).expect("resume");
    // Resuming starts at once: the pause was our doing, so no reconnect back-off applies.
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].stats(l).downloaded > after.downloaded);
    w.run_until(Duration::from_secs(300), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
}

/// Found by the simulator's user commands: a pause threw away the buffers of half-received
/// pieces but the picker kept their blocks as received, so after the resume those pieces
/// completed around zeros, failed their hash check and got the honest seeder banned.
#[test]
fn a_piece_half_received_at_a_pause_is_fetched_whole_after_the_resume() {
    let tt = TestTorrent::new(21, 256 * 1024, &[file("big.bin", 2 << 20)]);
    let mut w = World::new(21);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(200_000);
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].stats(l).downloaded >= 128 * 1024);
    assert_eq!(w.nodes[leecher].stats(l).pieces_have, 0, "the first piece is only half in");
    w.command(leecher, |e, now| e.pause(l, now)).expect("pause");
    w.run_for(Duration::from_secs(1));
    w.command(leecher, |e, now| e.resume(l, now)).expect("resume");

    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
    let node = &w.nodes[leecher];
    assert!(!node.saw(|e| matches!(e, Event::HashFailed { .. })), "a piece failed its hash check");
    assert!(!node.saw(|e| matches!(e, Event::PeerBanned { .. })), "the honest seeder was banned");
}

#[test]
fn shutdown_says_stopped_and_completes_when_the_tracker_answers() {
    let tt = plain_torrent(7);
    let mut w = World::new(7);
    let seeder = w.add_node();
    let s = w.seed(seeder, &tt);
    w.run_until(Duration::from_secs(10), |w| {
        w.nodes[seeder].saw(|e| matches!(e, Event::TrackerReply { torrent, .. } if *torrent == s))
    });

    let at = w.now;
    w.command(seeder, |e, now| e.shutdown(now));
    w.run_until(Duration::from_secs(10), |w| w.nodes[seeder].saw(|e| *e == Event::ShutdownComplete));

    let node = &w.nodes[seeder];
    let stopped: Vec<_> = node.tracker_gets.iter().filter(|(t, u)| *t >= at && u.contains("event=stopped")).collect();
    assert_eq!(stopped.len(), 1, "one stopped announce: {:?}", node.tracker_gets);
    let done = node.events.iter().find(|(_, e)| *e == Event::ShutdownComplete).map(|(t, _)| *t).unwrap();
    assert!(done - at < Duration::from_secs(1), "finished as soon as the tracker answered: {:?}", done - at);
    assert!(node.saw(|e| *e == Event::Removed { torrent: s }));
    assert!(node.engine.is_shut_down());
}

#[test]
fn shutdown_completes_after_the_timeout_when_the_tracker_is_silent() {
    let tt = plain_torrent(8);
    let mut w = World::new(8);
    let seeder = w.add_node();
    let s = w.seed(seeder, &tt);
    w.run_until(Duration::from_secs(10), |w| {
        w.nodes[seeder].saw(|e| matches!(e, Event::TrackerReply { torrent, .. } if *torrent == s))
    });

    w.tracker_down = true;
    let at = w.now;
    w.command(seeder, |e, now| e.shutdown(now));
    w.run_until(Duration::from_secs(30), |w| w.nodes[seeder].saw(|e| *e == Event::ShutdownComplete));

    let node = &w.nodes[seeder];
    assert!(node.tracker_gets.iter().any(|(t, u)| *t >= at && u.contains("event=stopped")));
    let done = node.events.iter().find(|(_, e)| *e == Event::ShutdownComplete).map(|(t, _)| *t).unwrap();
    let timeout = node.engine.config().shutdown_timeout;
    assert!(
        done - at >= timeout && done - at <= timeout + Duration::from_secs(1),
        "gave up after the shutdown timeout: {:?}",
        done - at
    );
    assert!(node.engine.is_shut_down());
}

#[test]
fn removal_waits_for_a_piece_write_under_way() {
    // Hash jobs that take 3 s: the torrent is removed while one runs. Its files may be
    // deleted as soon as Removed is out, so the write must be over by then.
    let tt = plain_torrent(17);
    let mut w = World::new(17);
    w.timing.hash_writes = true;
    w.timing.hash = Duration::from_secs(3);
    w.keep_trace = true;
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    let hashing = |w: &World| w.trace_lines.iter().any(|line| line.split(' ').nth(2) == Some("Hash"));
    w.run_until(Duration::from_secs(30), hashing);
    assert!(hashing(&w), "a hash job started");
    let asked = w.now;
    w.command(leecher, |e, now| e.remove(l, now)).unwrap();

    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].saw(|e| *e == Event::Removed { torrent: l }));

    let (at, _) = w.nodes[leecher]
        .events
        .iter()
        .find(|(_, e)| *e == Event::Removed { torrent: l })
        .expect("the torrent is removed");
    assert!(
        at.as_micros() >= asked.as_micros() + 2_000_000,
        "removed at {at:?}, {asked:?} was when the 3 s hash job had just started"
    );
    assert!(!w.nodes[leecher].disk(l).written_pieces.is_empty(), "the piece under way was written before");
}
