//! Peer exchange (BEP 11): learning peers from peers, capped, rate-limited and checked, and
//! never for a private torrent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::wire::{ExtendedHandshake, Message, PexMessage, PEX_OUTGOING, PEX_SEED, UT_PEX};
use shoal_core::{TorrentId, TorrentState};

use crate::support::{
    assert_complete, handshake, pex_frame, pex_greeting, plain_torrent, raw_messages, PexSwarm, RawId, World,
};

#[test]
fn a_leecher_that_knows_one_slow_peer_finds_the_seeder_through_its_pex() {
    let PexSwarm { mut w, tt, seeder, slow, leecher, l } = PexSwarm::new(24, false);
    let start = w.now;
    w.run_until(Duration::from_secs(100), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    assert!(!w.nodes[slow].finished(TorrentId(1)), "B stayed a leecher");
    let seeder_addr = w.nodes[seeder].addr;
    let at = w.dialled(leecher, seeder_addr).expect("the leecher dialled the seeder");
    // B's first message goes about a minute after the connection, not at once.
    let waited = at - start;
    assert!(waited >= Duration::from_secs(60) && waited < Duration::from_secs(63), "dialled after {waited:?}");
    assert_eq!(w.nodes[leecher].stats(l).pex, Some(1), "one peer learned through PEX");

    // What B told A: the seeder it dialled, as a seed reachable by outgoing connections.
    let ut_pex = w.advertised(leecher)[0][UT_PEX];
    let told: Vec<PexMessage> = w
        .wire_log
        .iter()
        .filter(|e| e.from.0 == slow && e.to.0 == leecher)
        .filter_map(|e| match &e.msg {
            Message::Extended { id, payload } if *id == ut_pex => PexMessage::decode(payload, 100, 100).ok(),
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), 1, "one message in the first minute: {told:?}");
    assert_eq!(told[0].added, vec![(seeder_addr, PEX_SEED | PEX_OUTGOING)]);
    assert!(told[0].dropped.is_empty());
}

#[test]
fn a_private_torrent_neither_sends_nor_takes_pex() {
    let PexSwarm { mut w, tt, seeder, slow, leecher, l } = PexSwarm::new(25, true);
    let seeder_addr = w.nodes[seeder].addr;
    // A peer that ignores BEP 27 tells the leecher of the seeder under libtorrent's ut_pex id.
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].stats(l).state == TorrentState::Downloading);
    let raw = w.raw_connect(leecher, SocketAddr::from(([10, 0, 9, 1], 5000)));
    let mut greeting = handshake(tt.meta.info_hash);
    let ext = ExtendedHandshake { m: BTreeMap::from([(UT_PEX.to_owned(), 1)]), ..Default::default() };
    Message::Extended { id: 0, payload: ext.encode() }.encode(&mut greeting);
    let pex = PexMessage { added: vec![(seeder_addr, PEX_SEED)], dropped: vec![] };
    Message::Extended { id: 1, payload: pex.encode() }.encode(&mut greeting);
    w.raw_send(raw, &greeting);

    w.run_for(Duration::from_secs(150));

    assert!(!w.raws[raw].closed, "the message is ignored, not punished");
    assert_eq!(w.dialled(leecher, seeder_addr), None, "the leecher never dialled the seeder");
    assert_eq!(w.nodes[leecher].stats(l).pex, None);
    for node in [seeder, slow, leecher] {
        assert!(w.advertised(node).iter().all(|m| !m.contains_key(UT_PEX)), "node {node} offered ut_pex");
    }
    let extension_messages: Vec<_> =
        w.wire_log.iter().filter(|e| matches!(e.msg, Message::Extended { id, .. } if id != 0)).collect();
    assert!(extension_messages.is_empty(), "{extension_messages:?}");
}

#[test]
fn pex_from_peers_is_capped_rate_limited_and_checked_and_ours_names_listen_ports_only() {
    let mut tt = plain_torrent(26);
    tt.meta.trackers.clear();
    let ih = tt.meta.info_hash;
    let mut w = World::new(26);
    w.keep_trace = true;
    let node = w.add_node();
    let own = w.nodes[node].addr;
    let l = w.leech(node, &tt);
    w.run_until(Duration::from_secs(5), |w| w.nodes[node].stats(l).state == TorrentState::Downloading);
    let raw_addr = |i: u8| SocketAddr::from(([10, 0, 9, i], 5000));
    let own_ip = match own.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    // r1 and r2 say where they listen, r3 does not; r1 tells the engine its address.
    let greetings = [
        pex_greeting(ih, 1, Some(7001), Some(own_ip)),
        pex_greeting(ih, 2, Some(7002), None),
        pex_greeting(ih, 3, None, None),
    ];
    let mut raws = Vec::new();
    for (i, greeting) in greetings.iter().enumerate() {
        let raw = w.raw_connect(node, raw_addr(i as u8 + 1));
        w.raw_send(raw, greeting);
        raws.push(raw);
    }
    let connected = w.now;
    w.run_for(Duration::from_millis(50));
    let ut_pex = raw_messages(&w.raws[raws[0]].received)
        .into_iter()
        .find_map(|m| match m {
            Message::Extended { id: 0, payload } => ExtendedHandshake::decode(&payload).ok(),
            _ => None,
        })
        .expect("an extended handshake")
        .m[UT_PEX];

    // 150 peers: the first 100 are taken, and of those our own address and port 0 are not.
    let zero_port = SocketAddr::from(([10, 1, 0, 1], 0));
    let mut added = vec![own, zero_port];
    added.extend((0..148u32).map(|i| SocketAddr::from(([10, 2, (i / 200) as u8, (i % 200) as u8 + 1], 6000))));
    w.raw_send(raws[0], &pex_frame(ut_pex, &added));
    w.run_for(Duration::from_millis(50));
    assert_eq!(w.nodes[node].stats(l).pex, Some(98));
    assert_eq!(w.dialled(node, own), None, "dialled itself");
    assert_eq!(w.dialled(node, zero_port), None, "dialled port 0");
    assert!(w.dialled(node, added[2]).is_some(), "dialled a peer it was told of");

    // A second message within 45 s is ignored, one after that is taken; each peer has its own.
    let extra = |i: u8| SocketAddr::from(([10, 3, 0, i], 6000));
    w.run_for(Duration::from_secs(10));
    w.raw_send(raws[0], &pex_frame(ut_pex, &[extra(1)]));
    w.run_for(Duration::from_millis(50));
    assert_eq!(w.nodes[node].stats(l).pex, Some(98), "a flood is ignored");
    w.raw_send(raws[1], &pex_frame(ut_pex, &[extra(2)]));
    w.run_for(Duration::from_secs(36));
    assert_eq!(w.nodes[node].stats(l).pex, Some(99), "another peer's message is taken");
    w.raw_send(raws[0], &pex_frame(ut_pex, &[extra(3)]));
    w.run_for(Duration::from_millis(50));
    assert_eq!(w.nodes[node].stats(l).pex, Some(100), "taken again after 45 s");
    assert!(raws.iter().all(|r| !w.raws[*r].closed));

    // A message that does not parse closes its sender.
    let bad = w.raw_connect(node, raw_addr(9));
    w.raw_send(bad, &pex_greeting(ih, 9, None, None));
    let mut garbage = Vec::new();
    Message::Extended { id: ut_pex, payload: b"d5:added5:abcdee".to_vec() }.encode(&mut garbage);
    w.raw_send(bad, &garbage);
    w.run_for(Duration::from_millis(50));
    assert!(w.raws[bad].closed);

    // About a minute after connecting, each peer hears of the others at their listening
    // addresses: never of itself, never of r3 (whose listening port is unknown).
    w.run_until(Duration::from_secs(30), |w| w.now >= connected + Duration::from_secs(62));
    let heard = |raw: RawId| -> Vec<Vec<(SocketAddr, u8)>> {
        raw_messages(&w.raws[raw].received)
            .into_iter()
            .filter_map(|m| match m {
                Message::Extended { id: 7, payload } => PexMessage::decode(&payload, 100, 100).ok().map(|m| m.added),
                _ => None,
            })
            .collect()
    };
    let listen = |i: u8, port: u16| SocketAddr::from(([10, 0, 9, i], port));
    assert_eq!(heard(raws[0]), vec![vec![(listen(2, 7002), 0)]]);
    assert_eq!(heard(raws[1]), vec![vec![(listen(1, 7001), 0)]]);
    assert_eq!(heard(raws[2]), vec![vec![(listen(1, 7001), 0), (listen(2, 7002), 0)]]);
}
