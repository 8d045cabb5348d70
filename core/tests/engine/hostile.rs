//! Peers that lie, send garbage, stall or send what nobody asked for: closed, banned or given
//! up on, and the download still exact.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::wire::Message;
use shoal_core::{AddTorrent, Bitfield, Event, InfoHash, TorrentId, BLOCK_SIZE};

use crate::support::{assert_complete, handshake, plain_torrent, Disk, RawSeeder, World, PIECE};

#[test]
fn corrupt_seeder_is_banned_and_the_download_is_still_exact() {
    let tt = plain_torrent(3);
    let n = tt.pieces();
    let mut bad = tt.data.clone();
    for piece in (0..n).step_by(3) {
        let r = tt.piece_range(piece);
        for b in &mut bad[r.start..r.start + 100] {
            *b ^= 0x5a;
        }
    }
    let mut w = World::new(3);
    let liar = w.add_node();
    let honest = w.add_node();
    let leecher = w.add_node();
    // Claims every piece without checking; its disk holds wrong bytes in every third piece.
    let params =
        AddTorrent { have: Some(Bitfield::full(n)), check_existing: false, ..AddTorrent::new(tt.meta.clone()) };
    w.add_torrent(liar, params, Disk::full(&tt.meta, &bad));
    w.seed(honest, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    let node = &w.nodes[leecher];
    assert!(node.saw(|e| matches!(e, Event::HashFailed { torrent, .. } if *torrent == l)), "hash failures reported");
    let liar_ip = w.nodes[liar].addr.ip();
    let honest_ip = w.nodes[honest].addr.ip();
    assert!(
        node.saw(|e| matches!(e, Event::PeerBanned { addr, .. } if addr.ip() == liar_ip)),
        "the corrupt seeder is banned: {:?}",
        node.events
    );
    assert!(
        !node.saw(|e| matches!(e, Event::PeerBanned { addr, .. } if addr.ip() == honest_ip)),
        "the honest seeder is not banned: {:?}",
        node.events
    );
    assert!(node.stats(l).wasted > 0);
}

#[test]
fn hostile_peers_are_closed_and_the_engine_keeps_working() {
    let tt = plain_torrent(12);
    let ih = tt.meta.info_hash;
    let mut w = World::new(12);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(500_000);
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    w.run_until(Duration::from_secs(5), |w| w.nodes[seeder].saw(|e| matches!(e, Event::Checked { .. })));

    let frame = |id: u8, payload: &[u8]| {
        let mut f = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        f.push(id);
        f.extend_from_slice(payload);
        f
    };
    let request = |piece: u32, offset: u32, len: u32| {
        let mut p = piece.to_be_bytes().to_vec();
        p.extend_from_slice(&offset.to_be_bytes());
        p.extend_from_slice(&len.to_be_bytes());
        frame(6, &p)
    };
    // (what, a valid handshake first?, the hostile bytes)
    let cases: Vec<(&str, bool, Vec<u8>)> = vec![
        ("oversized length prefix", true, vec![0xff, 0xff, 0xff, 0xf0, 7]),
        ("garbage instead of a handshake", false, vec![0xab; 100]),
        ("unknown info-hash", false, handshake(InfoHash([7; 20]))),
        ("bitfield of the wrong length", true, frame(5, &[0xff; 3])),
        ("request for a piece past the end", true, request(tt.pieces() + 5, 0, BLOCK_SIZE)),
        ("request past the end of a piece", true, request(0, PIECE - 10, BLOCK_SIZE)),
        ("handshake and garbage in one read", false, [handshake(ih), vec![0xff; 8]].concat()),
    ];
    for (i, (what, greet, hostile)) in cases.into_iter().enumerate() {
        let from = SocketAddr::from(([10, 0, 9, i as u8 + 1], 5000));
        let raw = w.raw_connect(seeder, from);
        if greet {
            w.raw_send(raw, &handshake(ih));
            w.run_until(Duration::from_secs(5), |w| w.raws[raw].received.starts_with(b"\x13BitTorrent protocol"));
            assert!(!w.raws[raw].closed, "{what}: a valid handshake is accepted");
        }
        w.raw_send(raw, &hostile);
        w.run_until(Duration::from_secs(5), |w| w.raws[raw].closed);
        let conn = w.raws[raw].conn;
        assert!(w.nodes[seeder].closes.iter().any(|(_, c)| *c == conn), "{what}: Output::Close");
    }

    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);
    assert!(w.nodes[seeder].engine.peers(TorrentId(1)).iter().all(|p| p.addr.ip() == w.nodes[leecher].addr.ip()));
}

#[test]
fn a_silent_seeder_is_sent_cancels_and_blocks_it_sends_later_are_kept() {
    let tt = plain_torrent(31);
    let RawSeeder { world: mut w, leecher, torrent: l, raw } = RawSeeder::new(31, &tt, |_| {});
    let is_request = |m: &Message| matches!(m, Message::Request(_));
    let is_cancel = |m: &Message| matches!(m, Message::Cancel(_));
    let asked = w.sent_to(raw, is_request);

    // Silent past the request timeout: the leecher gives up on every request and says so.
    w.run_until(Duration::from_secs(60), |w| !w.sent_to(raw, is_cancel).is_empty());
    assert!(w.nodes[leecher].engine.peers(l)[0].snubbed);
    let (mut cancelled, mut asked_sorted) = (w.sent_to(raw, is_cancel), asked.clone());
    cancelled.sort();
    asked_sorted.sort();
    assert_eq!(cancelled, asked_sorted, "one cancel per request given up on");

    // The seeder sends the first piece it was asked for anyway: it is kept, not wasted.
    let piece = asked[0].0;
    assert_eq!(asked.iter().filter(|r| r.0 == piece).count(), (PIECE / BLOCK_SIZE) as usize);
    let range = tt.piece_range(piece);
    let mut late = Vec::new();
    for offset in (0..PIECE).step_by(BLOCK_SIZE as usize) {
        let data = tt.data[range.start + offset as usize..][..BLOCK_SIZE as usize].to_vec();
        Message::Piece { piece, offset, data }.encode(&mut late);
    }
    w.raw_send(raw, &late);
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].finished_pieces(l).contains(&piece));
    let st = w.nodes[leecher].stats(l);
    assert_eq!((st.downloaded, st.wasted), (PIECE as u64, 0));
    // A block nobody asked for stays waste.
    let other = (0..tt.pieces()).find(|p| !asked.iter().any(|r| r.0 == *p)).expect("a piece never asked for");
    let data = tt.data[tt.piece_range(other).start..][..BLOCK_SIZE as usize].to_vec();
    let mut stray = Vec::new();
    Message::Piece { piece: other, offset: 0, data }.encode(&mut stray);
    w.raw_send(raw, &stray);
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].stats(l).wasted == BLOCK_SIZE as u64);
}

#[test]
fn a_late_block_opens_no_piece_buffer_over_the_memory_cap() {
    // Room for one piece in memory. The silent seeder is given up on; then it sends a block
    // of one piece, one of another, and the rest of the first.
    let tt = plain_torrent(35);
    let RawSeeder { world: mut w, leecher, torrent: l, raw } =
        RawSeeder::new(35, &tt, |c| c.max_in_flight_bytes = PIECE as u64);
    let asked = w.sent_to(raw, |m| matches!(m, Message::Request(_)));
    w.run_until(Duration::from_secs(60), |w| !w.sent_to(raw, |m| matches!(m, Message::Cancel(_))).is_empty());
    let block = |piece: u32, offset: u32| {
        let data = tt.data[tt.piece_range(piece).start + offset as usize..][..BLOCK_SIZE as usize].to_vec();
        let mut out = Vec::new();
        Message::Piece { piece, offset, data }.encode(&mut out);
        out
    };
    let (a, b) = (asked[0].0, asked.iter().map(|r| r.0).find(|p| *p != asked[0].0).expect("two pieces asked for"));
    w.raw_send(raw, &[block(a, 0), block(b, 0), block(a, BLOCK_SIZE)].concat());
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].finished_pieces(l).contains(&a));
    let st = w.nodes[leecher].stats(l);
    assert_eq!((st.downloaded, st.wasted), (3 * BLOCK_SIZE as u64, BLOCK_SIZE as u64), "piece {b}'s block is waste");
}

#[test]
fn a_peer_that_repeats_unchoke_but_sends_nothing_is_still_given_up_on() {
    let tt = plain_torrent(33);
    let RawSeeder { world: mut w, raw, .. } = RawSeeder::new(33, &tt, |_| {});
    let mut unchoke = Vec::new();
    Message::Unchoke.encode(&mut unchoke);
    // UNCHOKE every 2 s and never a block: after the request timeout (30 s) the leecher
    // cancels what it asked for.
    for _ in 0..25 {
        w.run_for(Duration::from_secs(2));
        w.raw_send(raw, &unchoke);
    }
    let cancels = w.sent_to(raw, |m| matches!(m, Message::Cancel(_)));
    assert!(!cancels.is_empty(), "no request was given up on in 50 s");
}
