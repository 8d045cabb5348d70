//! Checking existing data: one torrent at a time in the order they came, resume data that
//! skips or limits the check, and checks interrupted by a pause or a removal.

use std::time::Duration;

use shoal_core::{AddTorrent, Bitfield, Event, TorrentState, BLOCK_SIZE};

use crate::support::{assert_complete, plain_torrent, Disk, TestTorrent, World};

#[test]
fn resumed_download_fetches_only_the_missing_half() {
    let tt = plain_torrent(5);
    let n = tt.pieces();
    let mut have = Bitfield::new(n);
    let mut disk = Disk::empty(&tt.meta);
    for p in (0..n).filter(|p| p % 2 == 0) {
        have.set(p, true);
        let r = tt.piece_range(p);
        disk.fill(r.start as u64, &tt.data[r]);
    }
    let missing: u64 = (0..n).filter(|p| p % 2 == 1).map(|p| tt.piece_range(p).len() as u64).sum();

    let mut w = World::new(5);
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let params = AddTorrent { have: Some(have), ..AddTorrent::new(tt.meta.clone()) };
    let l = w.add_torrent(leecher, params, disk);

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    let st = w.nodes[leecher].stats(l);
    assert!(
        (missing..=missing + 4 * BLOCK_SIZE as u64).contains(&st.downloaded),
        "downloaded {} for {missing} missing bytes",
        st.downloaded
    );
    let disk = w.nodes[leecher].disk(l);
    assert!(disk.written_pieces.iter().all(|p| p % 2 == 1), "only missing pieces written");
    assert!(!w.nodes[leecher].saw(|e| matches!(e, Event::Checked { .. })), "resume data skips the check");
}

#[test]
fn torrents_check_one_at_a_time_in_the_order_they_came() {
    let tts: Vec<TestTorrent> = (0..3).map(|i| plain_torrent(20 + i)).collect();
    let mut w = World::new(17);
    w.timing.disk = Duration::from_millis(10);
    let node = w.add_node();
    let ts: Vec<_> = tts.iter().map(|tt| w.seed(node, tt)).collect();

    assert_eq!(w.check_states(node, &ts), (vec![0], vec![1, 2]), "the first checks, the others wait");
    assert!(w.nodes.iter().all(|n| n.tracker_gets.is_empty()), "no announces while checking or queued");
    let mut seen_checking = Vec::new();
    w.run_until(Duration::from_secs(60), |w| {
        let (checking, _) = w.check_states(node, &ts);
        assert!(checking.len() <= 1, "at most one torrent checks at once: {checking:?}");
        if let Some(&c) = checking.first() {
            if seen_checking.last() != Some(&c) {
                seen_checking.push(c);
            }
        }
        ts.iter().all(|t| w.nodes[node].stats(*t).state == TorrentState::Seeding)
    });
    assert_eq!(seen_checking, [0, 1, 2], "checks ran in the order the torrents were added");
    let checked: Vec<_> = w.nodes[node]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Checked { torrent, have, total } => {
                assert_eq!(have, total, "the data is all there");
                Some(*torrent)
            }
            _ => None,
        })
        .collect();
    assert_eq!(checked, ts);
}

#[test]
fn pausing_or_removing_a_checking_or_queued_torrent_frees_its_slot() {
    let tts: Vec<TestTorrent> = (0..4).map(|i| plain_torrent(30 + i)).collect();
    let mut w = World::new(18);
    w.timing.disk = Duration::from_millis(10);
    let node = w.add_node_with(|c| c.max_checking_torrents = 2);
    let ts: Vec<_> = tts.iter().map(|tt| w.seed(node, tt)).collect();
    assert_eq!(w.check_states(node, &ts), (vec![0, 1], vec![2, 3]), "two slots");

    // Removing a queued torrent leaves the running checks alone.
    w.command(node, |e, now| e.remove(ts[2], now)).expect("remove");
    assert_eq!(w.check_states(node, &ts[..2]), (vec![0, 1], vec![]));
    // Pausing a checking torrent hands its slot to the next in line at once.
    w.command(node, |e, now| e.pause(ts[0], now)).expect("pause");
    assert_eq!(w.nodes[node].stats(ts[0]).state, TorrentState::Paused);
    let (checking, queued) = w.check_states(node, &[ts[1], ts[3]]);
    assert_eq!((checking, queued), (vec![0, 1], vec![]));
    // Resumed, it waits for a slot again, behind the two running checks.
    w.command(node, |e, now| e.resume(ts[0], now)).expect("resume");
    assert_eq!(w.nodes[node].stats(ts[0]).state, TorrentState::CheckQueued);

    w.run_until(Duration::from_secs(60), |w| {
        [ts[0], ts[1], ts[3]].iter().all(|t| w.nodes[node].stats(*t).state == TorrentState::Seeding)
    });
    assert!(w.nodes[node].saw(|e| *e == Event::Removed { torrent: ts[2] }));
    assert!(!w.nodes[node].saw(|e| matches!(e, Event::Checked { torrent, .. } if *torrent == ts[2])));
    let total = tts[0].pieces();
    // The interrupted check starts over: its earlier results do not count twice.
    let checked0: Vec<_> = w.nodes[node]
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Checked { torrent, .. } if *torrent == ts[0]))
        .collect();
    assert_eq!(checked0.len(), 1);
    assert_eq!(checked0[0].1, Event::Checked { torrent: ts[0], have: total, total });
}

#[test]
fn a_check_paused_and_resumed_at_once_ignores_the_results_of_the_first_run() {
    let tt = plain_torrent(40);
    let total = tt.pieces();
    let mut w = World::new(19);
    w.timing.disk = Duration::from_millis(10);
    let node = w.add_node();
    let t = w.seed(node, &tt);
    w.run_for(Duration::from_millis(25));
    w.command(node, |e, now| e.pause(t, now)).expect("pause");
    w.command(node, |e, now| e.resume(t, now)).expect("resume");
    assert!(matches!(w.nodes[node].stats(t).state, TorrentState::Checking { .. }), "the slot was free");
    w.run_until(Duration::from_secs(60), |w| w.nodes[node].stats(t).state == TorrentState::Seeding);
    let checked: Vec<_> = w.nodes[node].events.iter().filter(|(_, e)| matches!(e, Event::Checked { .. })).collect();
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert_eq!(checked[0].1, Event::Checked { torrent: t, have: total, total });
}

#[test]
fn after_a_crash_pieces_verified_since_the_checkpoint_are_checked_not_downloaded_again() {
    let tt = plain_torrent(23);
    let n = tt.pieces();
    // The checkpoint knew the first third; the rest was verified and written after it.
    let mut have = Bitfield::new(n);
    for p in 0..n / 3 {
        have.set(p, true);
    }
    let disk = Disk::full(&tt.meta, &tt.data);
    let mut w = World::new(23);
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let params = AddTorrent { have: Some(have), verify_unverified: true, ..AddTorrent::new(tt.meta.clone()) };
    let l = w.add_torrent(leecher, params, disk);

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    assert_eq!(w.nodes[leecher].stats(l).downloaded, 0, "verified data was downloaded again");
}
