//! Peer connections over uTP (BEP 29) on the DHT socket: a download whose every connection is
//! uTP, and the fallback to TCP when the other side speaks no uTP.

use std::time::Duration;

use crate::support::{assert_complete, plain_torrent, World};

#[test]
fn a_download_runs_over_utp_alone_when_both_sides_speak_it() {
    let tt = plain_torrent(31);
    let mut w = World::new(31);
    let seeder = w.add_node_with(|c| c.utp = true);
    let leecher = w.add_node_with(|c| c.utp = true);
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
    assert_eq!(w.stream_dials, 0, "every connection went over uTP");
}

#[test]
fn a_dial_falls_back_to_tcp_when_the_peer_speaks_no_utp() {
    let tt = plain_torrent(32);
    let mut w = World::new(32);
    let seeder = w.add_node_with(|c| c.utp = false);
    let leecher = w.add_node_with(|c| c.utp = true);
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
    assert!(w.stream_dials >= 1, "the uTP dial failed and TCP took over");
}
