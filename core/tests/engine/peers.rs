//! What the engine knows of its peers (availability, rates, requests, choking) and whom it
//! dials, and how often.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::wire::Message;
use shoal_core::{AddTorrent, Bitfield, Event};

use crate::support::{assert_complete, big_torrent, handshake, plain_torrent, Disk, NodeId, World, MIB};

#[test]
fn availability_counts_copies_among_connected_peers() {
    let tt = plain_torrent(41);
    let n = tt.pieces();
    let mut w = World::new(20);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(100_000);
    let leecher = w.add_node();
    let s = w.seed(seeder, &tt);
    // The leecher resumes with every third piece: its bitfield tells the seeder so.
    let mut have = Bitfield::new(n);
    let mut disk = Disk::empty(&tt.meta);
    for p in (0..n).step_by(3) {
        have.set(p, true);
        let r = tt.piece_range(p);
        disk.fill(r.start as u64, &tt.data[r]);
    }
    let l = w.add_torrent(leecher, AddTorrent { have: Some(have.clone()), ..AddTorrent::new(tt.meta.clone()) }, disk);
    assert_eq!(w.nodes[leecher].stats(l).availability, 0.0, "no peers yet");

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].stats(l).pieces_have >= n / 2);
    assert_eq!(w.nodes[leecher].stats(l).availability, 1.0, "one seed: exactly one copy");
    // The seeder knows the leecher's bitfield (HAVEs are not sent to seeds).
    let seen = w.nodes[seeder].stats(s).availability;
    assert_eq!(seen, have.count_ones() as f32 / n as f32, "no full copy, the leecher's share of the pieces");

    w.command(seeder, |e, now| e.pause(s, now)).expect("pause");
    w.run_until(Duration::from_secs(10), |w| w.nodes[leecher].stats(l).peers == 0);
    assert_eq!(w.nodes[leecher].stats(l).availability, 0.0, "the seed is gone");
}

#[test]
fn a_peers_own_download_rate_is_estimated_from_its_haves() {
    let tt = big_torrent(56, 8);
    let mut w = World::new(56);
    // The whole swarm gets 256 KiB/s from the seeder; each leecher tells the other of every
    // piece it completes.
    let seeder = w.add_node_with(|c| c.max_upload_rate = 256 * 1024);
    let a = w.add_node();
    let b = w.add_node();
    w.seed_unchecked(seeder, &tt);
    let la = w.leech(a, &tt);
    let lb = w.leech(b, &tt);
    w.run_until(Duration::from_secs(60), |w| w.nodes[a].stats(la).downloaded >= 3 * MIB);
    let a_seen_by_b = w.nodes[b].engine.peers(lb).into_iter().find(|p| !p.seed).expect("b is connected to a");
    let rate = a_seen_by_b.peer_download_rate;
    // a downloads at about half the seeder's rate plus what b passes on: 128..512 KiB/s.
    assert!((64 * 1024..=768 * 1024).contains(&rate), "b's estimate of a's download rate: {a_seen_by_b:?}");
}

#[test]
fn peer_stats_show_requests_both_ways_seeds_and_upload_only() {
    let tt = big_torrent(55, 4);
    let mut w = World::new(55);
    // A slow upload limit keeps the leecher's requests queued at the seeder.
    let seeder = w.add_node_with(|c| c.max_upload_rate = 256 * 1024);
    let leecher = w.add_node();
    let s = w.seed_unchecked(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].stats(l).downloaded >= MIB);

    let from_leecher = w.nodes[leecher].engine.peers(l);
    assert_eq!(from_leecher.len(), 1);
    let sp = &from_leecher[0];
    assert!(sp.seed && sp.upload_only, "the seeder is a seed: {sp:?}");
    assert!(sp.outstanding_requests >= 16, "requests in flight to the seeder: {sp:?}");
    assert_eq!(sp.queued_requests, 0, "the seeder asked us for nothing");
    let from_seeder = w.nodes[seeder].engine.peers(s);
    let lp = &from_seeder[0];
    assert!(!lp.seed && !lp.upload_only, "the leecher is neither: {lp:?}");
    assert_eq!(lp.outstanding_requests, 0);
    assert_eq!(sp.peer_download_rate, 0, "a seed announces no pieces: {sp:?}");
    // What the leecher asked for and the seeder has not sent yet, give or take the frames
    // already handed to the network.
    assert!(
        lp.queued_requests + 2 >= sp.outstanding_requests && lp.queued_requests <= sp.outstanding_requests,
        "queued at the seeder {} vs outstanding at the leecher {}",
        lp.queued_requests,
        sp.outstanding_requests
    );
    assert!(from_seeder.iter().chain(&from_leecher).all(|p| !p.optimistic), "the seeder unchokes round-robin");

    // BEP 21: a peer that says `upload_only` is shown so even without every piece.
    let raw = w.raw_connect(leecher, SocketAddr::from(([10, 0, 9, 1], 5000)));
    w.raw_send(raw, &handshake(tt.meta.info_hash));
    let ext = shoal_core::wire::ExtendedHandshake { upload_only: Some(true), ..Default::default() };
    let mut bytes = Vec::new();
    Message::Extended { id: 0, payload: ext.encode() }.encode(&mut bytes);
    Message::HaveNone.encode(&mut bytes);
    w.raw_send(raw, &bytes);
    w.run_for(Duration::from_millis(50));
    let raw_addr = SocketAddr::from(([10, 0, 9, 1], 5000));
    let rp = w.nodes[leecher].engine.peers(l).into_iter().find(|p| p.addr == raw_addr).expect("raw peer connected");
    assert!(rp.upload_only && !rp.seed, "{rp:?}");
}

#[test]
fn one_peer_holds_the_optimistic_unchoke_of_a_leecher() {
    let tt = plain_torrent(56);
    let mut w = World::new(56);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(50_000);
    w.seed(seeder, &tt);
    let nodes: Vec<NodeId> = (0..4).map(|_| w.add_node_with(|c| c.upload_slots = 1)).collect();
    let ts: Vec<_> = nodes.iter().map(|&n| w.leech(n, &tt)).collect();
    w.run_for(Duration::from_secs(12));

    let mut with_optimistic = 0;
    for (&n, &t) in nodes.iter().zip(&ts) {
        let peers = w.nodes[n].engine.peers(t);
        let optimistic: Vec<_> = peers.iter().filter(|p| p.optimistic).collect();
        assert!(optimistic.len() <= 1, "node {n}: {optimistic:?}");
        if let Some(p) = optimistic.first() {
            assert!(!p.am_choking && p.peer_interested, "an optimistic unchoke is an unchoke: {p:?}");
            with_optimistic += 1;
        }
    }
    assert!(with_optimistic > 0, "with one regular slot and three interested peers, some optimistic unchoke exists");
}

#[test]
fn a_peer_that_dialled_us_is_dialled_back_at_its_listen_port_only() {
    let tt = plain_torrent(13);
    let mut w = World::new(13);
    let leecher = w.add_node();
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(100_000);
    let l = w.leech(leecher, &tt);
    // The leecher announces first, so the seeder learns of it and dials in.
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].saw(|e| matches!(e, Event::TrackerReply { .. })));
    let s = w.seed(seeder, &tt);
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].stats(l).pieces_have >= 3);
    let peers = w.nodes[leecher].engine.peers(l);
    assert!(peers.len() == 1 && !peers[0].outgoing, "the seeder dialled in: {peers:?}");

    // The seeder goes away; the application hands the leecher its listening address.
    w.command(seeder, |e, now| e.pause(s, now)).expect("pause");
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].stats(l).peers == 0);
    let listen = w.nodes[seeder].addr;
    w.command(leecher, |e, now| e.add_peers(l, &[listen], now)).expect("add_peers");
    w.keep_trace = true;
    let dialled = format!(" {leecher} Connect {{ conn: ConnId(");
    let to_listen = format!("addr: {listen} }}");
    w.run_until(Duration::from_secs(120), |w| w.dialled(leecher, listen).is_some());
    w.command(seeder, |e, now| e.resume(s, now)).expect("resume");
    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);

    let dials: Vec<&String> = w.trace_lines.iter().filter(|t| t.contains(&dialled)).collect();
    assert!(
        dials.iter().all(|t| t.contains(&to_listen)),
        "only listening addresses are dialled, never a peer's source port: {dials:?}"
    );
}

/// A peer that failed to answer four times was never dialled again, even when no other peer
/// was left: a leecher whose only seeder was down for a minute stayed stranded until the next
/// tracker announce (30 minutes on most trackers). Stranded, it keeps trying, backing off to
/// minutes.
#[test]
fn a_stranded_leecher_keeps_trying_its_seeder_ever_more_slowly() {
    let tt = plain_torrent(22);
    let mut w = World::new(22);
    let seeder = w.add_node();
    let leecher = w.add_node();
    let l = w.leech(leecher, &tt);
    let addr = w.nodes[seeder].addr;
    // The seeder's engine runs but does not have the torrent yet: every dial is refused.
    w.command(leecher, |e, now| e.add_peers(l, &[addr], now)).expect("add_peers");
    let dials = |w: &World| w.nodes[seeder].closes.len();
    w.run_for(Duration::from_secs(600));
    let first = dials(&w);
    assert!(first >= 4, "{first} dials in the first 10 minutes");
    w.run_for(Duration::from_secs(1200));
    let later = dials(&w) - first;
    assert!((1..=5).contains(&later), "{later} dials in the next 20 minutes: should be a few minutes apart");

    w.seed(seeder, &tt);
    w.run_until(Duration::from_secs(600), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
}

/// Issue #17: on a WAN link a seeder we were downloading from dialled us as well (it knew us
/// under a second address), and the duplicate rule (keep the connection dialled by the smaller
/// peer id) closed our warm connection with its outstanding requests. A duplicate never costs
/// a connection that is transferring: the newcomer is closed, on both sides, and every block
/// is asked for once.
#[test]
fn a_seeder_that_dials_us_again_never_costs_the_warm_connection() {
    let tt = big_torrent(171, 4);
    let mut w = World::new(171);
    w.tap = true;
    w.tracker_down = true; // peers come from `add_peers` only
    let (a, b) = (w.add_node(), w.add_node());
    // The old rule closes the leecher's own dial when its peer id is the larger one: that is
    // the case this test must catch.
    let (leecher, seeder) = if w.nodes[a].engine.peer_id().0 > w.nodes[b].engine.peer_id().0 { (a, b) } else { (b, a) };
    w.nodes[seeder].uplink.rate = Some(400_000);
    let s = w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    let listen = w.nodes[seeder].addr;
    w.command(leecher, |e, now| e.add_peers(l, &[listen], now)).expect("add_peers");
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].stats(l).pieces_have >= 2);
    let warm = w.nodes[leecher].engine.peers(l);
    assert!(warm.len() == 1 && warm[0].outgoing && warm[0].outstanding_requests > 0, "{warm:?}");

    // The seeder learns the leecher's second address and dials it.
    let alias = SocketAddr::from(([10, 0, 1, 99], 7000));
    w.nodes[leecher].aliases.push(alias);
    w.command(seeder, |e, now| e.add_peers(s, &[alias], now)).expect("add_peers");
    let duplicate = |w: &World, n: NodeId| {
        w.nodes[n].saw(|e| matches!(e, Event::PeerClosed { reason: shoal_core::CloseReason::Duplicate, .. }))
    };
    w.run_until(Duration::from_secs(10), |w| duplicate(w, leecher) || duplicate(w, seeder));
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);

    let finished_at =
        w.nodes[leecher].events.iter().find(|(_, e)| matches!(e, Event::Finished { .. })).map(|(t, _)| *t);
    let lost: Vec<_> = w.nodes[leecher]
        .events
        .iter()
        .filter(|(t, e)| Some(*t) < finished_at && matches!(e, Event::PeerClosed { addr, .. } if *addr == listen))
        .collect();
    assert!(lost.is_empty(), "the warm connection was closed before the download finished: {lost:?}");
    let mut asked: Vec<_> = w
        .wire_log
        .iter()
        .filter(|m| m.from.0 == leecher)
        .filter_map(|m| match m.msg {
            Message::Request(b) => Some((b.piece, b.offset)),
            _ => None,
        })
        .collect();
    let all = asked.len();
    asked.sort();
    asked.dedup();
    assert_eq!(all, asked.len(), "{} blocks were asked for again", all - asked.len());
}
