//! Upload and download rate limits: pacing, lifting them, sharing one limit among torrents.

use std::time::Duration;

use shoal_core::Event;

use crate::support::{assert_about, assert_complete, big_torrent, NodeId, World, MIB};

#[test]
fn without_limits_16_mib_arrive_in_a_moment() {
    let tt = big_torrent(50, 16);
    let mut w = World::new(50);
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed_unchecked(seeder, &tt);
    let l = w.leech(leecher, &tt);
    let secs = w.seconds_to_finish(leecher, l);
    assert!(secs < 3.0, "unlimited transfer took {secs:.2} s");
    assert_complete(&w, leecher, l, &tt);
}

#[test]
fn upload_limit_paces_the_seeder() {
    let tt = big_torrent(51, 16);
    let mut w = World::new(51);
    let seeder = w.add_node_with(|c| c.max_upload_rate = MIB);
    let leecher = w.add_node();
    let s = w.seed_unchecked(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].stats(l).downloaded >= 4 * MIB);
    let rate = w.nodes[seeder].stats(s).upload_rate as f64;
    assert!((0.8..=1.2).contains(&(rate / MIB as f64)), "upload rate {rate} while limited to 1 MiB/s");
    let secs = w.seconds_to_finish(leecher, l);
    assert_about(secs, 12.0, "the last 12 MiB at 1 MiB/s");
    assert_complete(&w, leecher, l, &tt);
}

#[test]
fn download_limit_paces_the_leecher_and_lifting_it_speeds_up() {
    let tt = big_torrent(52, 16);
    let mut w = World::new(52);
    let seeder = w.add_node();
    let leecher = w.add_node_with(|c| c.max_download_rate = MIB);
    w.seed_unchecked(seeder, &tt);
    let l = w.leech(leecher, &tt);
    let start = w.now;
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].stats(l).downloaded >= 8 * MIB);
    assert_about((w.now - start).as_secs_f64(), 8.0, "the first 8 MiB at 1 MiB/s");
    let rate = w.nodes[leecher].stats(l).download_rate as f64;
    assert!((0.8..=1.2).contains(&(rate / MIB as f64)), "download rate {rate} while limited to 1 MiB/s");

    w.command(leecher, |e, now| e.set_rate_limits(0, 0, now));
    let secs = w.seconds_to_finish(leecher, l);
    assert!(secs < 2.0, "the rest without a limit took {secs:.2} s");
    assert_complete(&w, leecher, l, &tt);
}

#[test]
fn upload_limit_is_shared_by_all_torrents() {
    let (a, b) = (big_torrent(53, 8), big_torrent(54, 8));
    let mut w = World::new(53);
    let seeder = w.add_node_with(|c| c.max_upload_rate = MIB);
    let la = w.add_node();
    let lb = w.add_node();
    w.seed_unchecked(seeder, &a);
    w.seed_unchecked(seeder, &b);
    let ta = w.leech(la, &a);
    let tb = w.leech(lb, &b);
    let start = w.now;
    w.run_until(Duration::from_secs(60), |w| w.nodes[la].finished(ta) && w.nodes[lb].finished(tb));
    let done = |node: NodeId, t| {
        let at = w.nodes[node].events.iter().find(|(_, e)| *e == Event::Finished { torrent: t }).unwrap().0;
        (at - start).as_secs_f64()
    };
    // 16 MiB in all through one 1 MiB/s limit, shared evenly: both end near 16 s.
    assert_about(done(la, ta), 16.0, "torrent a");
    assert_about(done(lb, tb), 16.0, "torrent b");
    assert_complete(&w, la, ta, &a);
    assert_complete(&w, lb, tb, &b);
}
