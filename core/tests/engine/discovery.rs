//! Finding peers without a tracker: the DHT (BEP 5, and its scrape, BEP 33) and Local Service
//! Discovery (BEP 14), and private torrents (BEP 27) kept off both; and being found over IPv6
//! through a tracker (BEP 7).

use std::time::Duration;

use shoal_core::{Input, Instant, Socket};

use crate::support::{assert_complete, plain_torrent, NodeId, World};

#[test]
fn a_leecher_without_trackers_finds_the_seeder_through_the_dht() {
    let mut tt = plain_torrent(21);
    tt.meta.trackers.clear();
    let mut w = World::new(21);
    let (seeder, leecher, router) = (w.add_node(), w.add_node(), w.add_node());
    // Each node knows one other: the router node only serves the DHT.
    // All three look at once, before anyone has announced: the leecher's first lookup finds
    // nothing, and it must ask again soon (not in 15 minutes).
    w.join_dht(&[(seeder, router), (leecher, router), (router, seeder)]);
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    let dht = w.nodes[leecher].stats(l).dht.expect("the DHT is on");
    assert!(dht.working && dht.peers >= 1, "{dht:?}");
}

#[test]
fn a_dht_scrape_counts_the_seed_and_the_leecher_of_a_torrent_we_do_not_have() {
    use shoal_core::{Config, DhtScrapeError, Engine};
    let mut tt = plain_torrent(23);
    tt.meta.trackers.clear();
    let hash = tt.meta.info_hash;
    // Without the DHT there is nobody to ask.
    let mut off = Engine::new(Config::default(), 1, Instant::ZERO);
    assert_eq!(off.dht_scrape(hash, Instant::ZERO), Err(DhtScrapeError::Off));

    let mut w = World::new(23);
    let (seeder, leecher, router, asker) = (w.add_node(), w.add_node(), w.add_node(), w.add_node());
    // The seeder sends slowly (1 MB at 2 kB/s): the leecher stays a leecher throughout.
    w.nodes[seeder].uplink.rate = Some(2_000);
    w.join_dht(&[(seeder, router), (leecher, router), (router, seeder), (asker, router)]);
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    // The leecher found the seeder on the DHT: the seeder has announced itself by then.
    w.run_until(Duration::from_secs(180), |w| w.nodes[leecher].stats(l).dht.is_some_and(|d| d.peers >= 1));

    // The asker has no such torrent. The leecher's own announce follows its lookup, so the
    // first count may still miss it: ask again (a few times at most) until both are in.
    let mut swarm = None;
    for _ in 0..5 {
        let id = w.command(asker, |e, now| e.dht_scrape(hash, now)).expect("the DHT is on");
        w.run_until(Duration::from_secs(120), |w| w.dht_scrape_result(asker, id).is_some());
        let (info_hash, counted) = w.dht_scrape_result(asker, id).unwrap();
        assert_eq!(info_hash, hash);
        swarm = Some(counted);
        if counted.leechers >= 1 {
            break;
        }
    }
    let swarm = swarm.unwrap();
    assert_eq!((swarm.seeders, swarm.leechers, swarm.peers_seen), (1, 1, 2), "{swarm:?}");
    assert!(swarm.nodes_with_filters >= 1, "{swarm:?}");
    assert!(!w.nodes[leecher].finished(l), "the leecher was still a leecher");
}

#[test]
fn private_torrents_stay_off_the_dht() {
    let mut tt = plain_torrent(22);
    tt.meta.trackers.clear();
    tt.meta.info.private = true;
    let mut w = World::new(22);
    let (seeder, leecher) = (w.add_node(), w.add_node());
    w.join_dht(&[(seeder, leecher), (leecher, seeder)]);
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_for(Duration::from_secs(60));
    let st = w.nodes[leecher].stats(l);
    assert_eq!(st.pieces_have, 0, "a private torrent found a peer without a tracker");
    assert_eq!(st.dht.map(|d| d.peers), Some(0));
}

#[test]
fn two_nodes_on_a_lan_find_each_other_through_local_service_discovery() {
    let mut tt = plain_torrent(24);
    tt.meta.trackers.clear();
    let mut w = World::new(24);
    let seeder = w.add_node_with(|c| c.lsd = true);
    let leecher = w.add_node_with(|c| c.lsd = true);
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
    // Both announced the torrent, once each so far (the next is due after five minutes).
    for n in [seeder, leecher] {
        let sends = &w.nodes[n].lsd_sends;
        assert_eq!(sends.len(), 2, "one datagram per group: {sends:?}");
        let a = shoal_core::lsd::parse(&sends[0].1).expect("our announce parses");
        assert_eq!((a.port, a.info_hashes), (w.nodes[n].addr.port(), vec![tt.meta.info_hash]));
    }
    w.run_for(Duration::from_secs(301));
    assert_eq!(w.nodes[seeder].lsd_sends.len(), 4, "announced again after five minutes");
}

#[test]
fn local_service_discovery_is_off_by_default_and_never_announces_private_torrents() {
    let mut public = plain_torrent(25);
    public.meta.trackers.clear();
    let mut w = World::new(25);
    let quiet = w.add_node();
    w.seed(quiet, &public);
    w.run_for(Duration::from_secs(10));
    assert!(w.nodes[quiet].lsd_sends.is_empty(), "LSD is off unless configured");

    let mut tt = plain_torrent(26);
    tt.meta.trackers.clear();
    tt.meta.info.private = true;
    let mut w = World::new(26);
    let seeder = w.add_node_with(|c| c.lsd = true);
    let leecher = w.add_node_with(|c| c.lsd = true);
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    // Even someone else's announce of the private torrent is not taken up.
    let fake = shoal_core::lsd::encode(w.nodes[seeder].addr.port(), &[tt.meta.info_hash], "other", false);
    let from = w.nodes[seeder].addr;
    w.command(leecher, |e, now| e.handle(Input::Datagram { socket: Socket::Lsd, from, data: &fake }, now));
    w.run_for(Duration::from_secs(60));
    assert!(w.nodes[seeder].lsd_sends.is_empty() && w.nodes[leecher].lsd_sends.is_empty());
    assert_eq!(w.nodes[leecher].stats(l).pieces_have, 0, "a private torrent found a peer through LSD");
}

#[test]
fn hostile_lsd_datagrams_are_ignored() {
    let mut tt = plain_torrent(27);
    tt.meta.trackers.clear();
    let mut w = World::new(27);
    let n = w.add_node_with(|c| c.lsd = true);
    w.keep_trace = true;
    w.leech(n, &tt);
    let from: std::net::SocketAddr = "10.9.9.9:6771".parse().unwrap();
    let good = shoal_core::lsd::encode(7000, &[tt.meta.info_hash], "x", false);
    let garbage: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0xff; 2000],
        good[..good.len() - 3].to_vec(),
        String::from_utf8(good.clone()).unwrap().replace("Port: 7000", "Port: 0").into_bytes(),
    ];
    for d in &garbage {
        w.command(n, |e, now| e.handle(Input::Datagram { socket: Socket::Lsd, from, data: d }, now));
    }
    w.run_for(Duration::from_secs(1));
    let dialed = |w: &World| w.trace_lines.iter().any(|l| l.contains("Connect") && l.contains("10.9.9.9:7000"));
    assert!(!dialed(&w), "a malformed announce was taken up");
    // A well-formed one is: the sender is dialed at the announced port.
    w.command(n, |e, now| e.handle(Input::Datagram { socket: Socket::Lsd, from, data: &good }, now));
    w.run_for(Duration::from_secs(1));
    assert!(dialed(&w), "{}", w.summary());
}

/// BEP 7: an engine that knows its global IPv6 address puts it in its HTTP announces
/// (`ipv6=`), so that a tracker reached over IPv4 can still hand it to IPv6 peers; one that
/// does not know it sends none.
#[test]
fn http_announces_carry_our_ipv6_address_when_known() {
    let tt = plain_torrent(77);
    let mut w = World::new(77);
    let v6: std::net::Ipv6Addr = "2001:db8::77".parse().expect("an address");
    let with = w.add_node_with(|c| c.announce_ipv6 = Some(v6));
    let without = w.add_node();
    w.seed(with, &tt);
    w.leech(without, &tt);
    w.run_until(Duration::from_secs(5), |w| w.nodes.iter().all(|n| !n.tracker_gets.is_empty()));
    let urls = |n: NodeId| w.nodes[n].tracker_gets.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>();
    assert!(urls(with).iter().all(|u| u.contains("&ipv6=2001%3Adb8%3A%3A77")), "{:?}", urls(with));
    assert!(urls(without).iter().all(|u| !u.contains("ipv6=")), "{:?}", urls(without));
}

/// A port mapping that arrives (or changes) after the first announce: trackers hear the new
/// port and address at once, not an interval (here 1800 s) later, so peers stop dialling a
/// port nobody forwards; setting the same again announces nothing more.
#[test]
fn a_new_announce_address_is_announced_at_once() {
    let tt = plain_torrent(78);
    let mut w = World::new(78);
    let seeder = w.add_node();
    w.seed(seeder, &tt);
    w.run_until(Duration::from_secs(5), |w| !w.nodes[seeder].tracker_gets.is_empty());
    w.run_for(Duration::from_secs(1));
    let first = w.nodes[seeder].tracker_gets.clone();
    assert_eq!(first.len(), 1, "{first:?}");
    let ip: std::net::IpAddr = "203.0.113.7".parse().expect("an address");
    w.command(seeder, |e, now| e.set_announce_addr(Some(ip), Some(7000), now));
    w.run_until(Duration::from_secs(5), |w| w.nodes[seeder].tracker_gets.len() > 1);
    let gets = w.nodes[seeder].tracker_gets.clone();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets[1].1.contains("&port=7000&") && gets[1].1.contains("&ip=203.0.113.7"), "{gets:?}");
    assert!(!gets[1].1.contains("event="), "a regular announce: {gets:?}");
    w.command(seeder, |e, now| e.set_announce_addr(Some(ip), Some(7000), now));
    w.run_for(Duration::from_secs(60));
    assert_eq!(w.nodes[seeder].tracker_gets.len(), 2, "nothing changed, nothing announced");
}
