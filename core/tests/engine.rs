//! Whole-engine behaviour in a deterministic simulated world (see `support`): swarms of engines
//! exchanging real wire bytes over a virtual network, with in-memory disks and a fake tracker.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::wire::{
    ExtendedHandshake, Handshake, HandshakeDecoder, HandshakeStep, Limits, Message, PexMessage, PEX_OUTGOING, PEX_SEED,
    UT_PEX,
};
use shoal_core::{
    AddTorrent, Bitfield, Event, FilePriority, InfoHash, Input, PeerId, Socket, TorrentState, BLOCK_SIZE,
};
use support::{file, pad, Disk, TestTorrent, World};

const PIECE: u32 = 32 * 1024;

/// A 1 MiB-ish single-directory torrent of plain files.
fn plain_torrent(seed: u64) -> TestTorrent {
    TestTorrent::new(seed, PIECE, &[file("a.bin", 700_001), file("b.bin", 300_000)])
}

/// Asserts a torrent is complete on a node: finished, seeding, every wanted byte verified and
/// the disk holding exactly the source bytes.
fn assert_complete(w: &World, node: usize, t: shoal_core::TorrentId, tt: &TestTorrent) {
    let n = &w.nodes[node];
    assert!(n.finished(t), "node {node} finished\n{}", w.summary());
    let st = n.stats(t);
    assert_eq!(st.state, TorrentState::Seeding, "node {node}");
    assert_eq!(st.have_bytes, st.wanted_bytes, "node {node}");
    assert_eq!(st.pieces_have, tt.pieces(), "node {node}");
    assert!(n.disk(t).contents() == tt.data, "node {node}: disk bytes differ from the source");
}

#[test]
fn leecher_gets_an_odd_multi_file_torrent_byte_exact() {
    // An empty file, a 1-byte file, a pad file aligning the next file, an odd total length.
    let first = 100_000u64 + 1;
    let pad_len = PIECE as u64 - first % PIECE as u64;
    let tt = TestTorrent::new(
        1,
        PIECE,
        &[
            file("a.bin", 100_000),
            file("empty.txt", 0),
            file("one.txt", 1),
            pad(".pad/0", pad_len),
            file("c.bin", 77_777),
        ],
    );
    assert_eq!(tt.data.len() % 2, 1, "odd total length");

    let mut w = World::new(1);
    let seeder = w.add_node();
    let leecher = w.add_node();
    let s = w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    let total = tt.pieces();
    assert!(w.nodes[seeder].saw(|e| *e == Event::Checked { torrent: s, have: total, total }));
    assert!(w.nodes[leecher].saw(|e| *e == Event::Checked { torrent: l, have: 0, total }));
    assert_complete(&w, leecher, l, &tt);
    let st = w.nodes[leecher].stats(l);
    assert_eq!(st.wanted_bytes, tt.data.len() as u64);
    let disk = w.nodes[leecher].disk(l);
    assert_eq!(disk.written_bytes(3), 0, "pad file never written");
    assert_eq!(disk.pad_writes, 0, "pad spans carried only zeros");
    assert_eq!(disk.written_pieces.len(), total as usize, "each piece written once");
}

#[test]
fn three_leechers_complete_and_trade_pieces_among_themselves() {
    let tt = plain_torrent(2);
    let mut w = World::new(2);
    let seeder = w.add_node();
    // A slow seeder: leechers must get much of the torrent from each other.
    w.nodes[seeder].uplink.rate = Some(200_000);
    let s = w.seed(seeder, &tt);
    let leechers: Vec<usize> = (0..3).map(|_| w.add_node()).collect();
    let ts: Vec<_> = leechers.iter().map(|&n| w.leech(n, &tt)).collect();

    w.run_until(Duration::from_secs(120), |w| leechers.iter().zip(&ts).all(|(&n, &t)| w.nodes[n].finished(t)));

    for (&n, &t) in leechers.iter().zip(&ts) {
        assert_complete(&w, n, t, &tt);
    }
    let uploads: Vec<u64> = leechers.iter().zip(&ts).map(|(&n, &t)| w.nodes[n].stats(t).uploaded).collect();
    assert!(uploads.iter().any(|u| *u > 0), "some leecher uploaded: {uploads:?}\n{}", w.summary());
    let seeder_up = w.nodes[seeder].stats(s).uploaded;
    let total = tt.data.len() as u64;
    assert!(seeder_up < 3 * total, "the seeder did not send everything thrice: {seeder_up}");
}

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
fn skipped_file_is_not_downloaded() {
    let tt = TestTorrent::new(4, PIECE, &[file("a.bin", 100_000), file("skip.bin", 300_000), file("c.bin", 90_001)]);
    let mut w = World::new(4);
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let params = AddTorrent {
        file_priorities: vec![FilePriority::Normal, FilePriority::Skip, FilePriority::Normal],
        ..AddTorrent::new(tt.meta.clone())
    };
    let l = w.add_torrent(leecher, params, Disk::empty(&tt.meta));

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    let node = &w.nodes[leecher];
    let st = node.stats(l);
    assert_eq!(st.state, TorrentState::Seeding);
    assert_eq!(st.have_bytes, st.wanted_bytes);
    let (f0, f2) = (tt.file_pieces(0), tt.file_pieces(2));
    let exclusive: Vec<u32> = tt.file_pieces(1).filter(|p| !f0.contains(p) && !f2.contains(p)).collect();
    assert!(exclusive.len() >= 5, "the test torrent has pieces only the skipped file covers");
    let wanted: u64 = (0..tt.pieces()).filter(|p| !exclusive.contains(p)).map(|p| tt.piece_range(p).len() as u64).sum();
    assert_eq!(st.wanted_bytes, wanted);
    let disk = node.disk(l);
    for p in &exclusive {
        assert!(!disk.written_pieces.contains(p), "skipped piece {p} was written");
        assert_eq!(disk.written_in(tt.piece_range(*p)), 0, "skipped piece {p} has bytes on disk");
    }
    let contents = disk.contents();
    for f in [0, 2] {
        let r = tt.file_range(f);
        assert!(contents[r.clone()] == tt.data[r], "file {f} is exact");
    }
    assert!(st.downloaded <= wanted + 4 * BLOCK_SIZE as u64, "downloaded {} of {wanted} wanted", st.downloaded);
}

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

/// A small swarm run to completion; the digest of every output of every engine.
fn swarm_trace(seed: u64) -> ([u8; 20], u64) {
    let tt = plain_torrent(9);
    let mut w = World::new(seed);
    let seeder = w.add_node();
    w.nodes[seeder].uplink.rate = Some(300_000);
    w.seed(seeder, &tt);
    let leechers: Vec<usize> = (0..2).map(|_| w.add_node()).collect();
    let ts: Vec<_> = leechers.iter().map(|&n| w.leech(n, &tt)).collect();
    w.run_until(Duration::from_secs(120), |w| leechers.iter().zip(&ts).all(|(&n, &t)| w.nodes[n].finished(t)));
    w.run_for(Duration::from_secs(5));
    (w.trace_digest(), w.trace_len)
}

#[test]
fn same_seed_same_outputs_other_seed_other_outputs() {
    let a = swarm_trace(10);
    let b = swarm_trace(10);
    assert!(a.1 > 300, "a real swarm ran: {} outputs", a.1);
    assert_eq!(a, b, "two runs with one seed differ");
    let c = swarm_trace(11);
    assert_ne!(a.0, c.0, "another seed gives another run");
}

fn handshake(info_hash: InfoHash) -> Vec<u8> {
    let mut out = Vec::new();
    Handshake::new(info_hash, PeerId(*b"-XX0001-hostilepeer0")).encode(&mut out);
    out
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
    assert!(w.nodes[seeder]
        .engine
        .peers(shoal_core::TorrentId(1))
        .iter()
        .all(|p| p.addr.ip() == w.nodes[leecher].addr.ip()));
}

/// The messages a hand-driven peer has received so far (after the handshake).
fn messages_to(w: &World, raw: usize) -> Vec<Message> {
    let mut d = HandshakeDecoder::new(Limits::default());
    d.feed(&w.raws[raw].received);
    let HandshakeStep::Done(_, mut d) = d.take().expect("a valid handshake") else { return Vec::new() };
    std::iter::from_fn(|| d.next_message().expect("valid messages")).collect()
}

/// A leecher of `tt` (its config tweaked) on a fresh world, with a hand-driven peer that has
/// everything, has unchoked it and has received its first requests.
fn leecher_with_a_raw_seeder(
    seed: u64,
    tt: &TestTorrent,
    tweak: impl FnOnce(&mut shoal_core::Config),
) -> (World, usize, shoal_core::TorrentId, usize) {
    let mut w = World::new(seed);
    let leecher = w.add_node_with(tweak);
    let l = w.leech(leecher, tt);
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].saw(|e| matches!(e, Event::Checked { .. })));
    let raw = w.raw_connect(leecher, SocketAddr::from(([10, 0, 9, 1], 5000)));
    let mut hello = handshake(tt.meta.info_hash);
    Message::HaveAll.encode(&mut hello);
    Message::Unchoke.encode(&mut hello);
    w.raw_send(raw, &hello);
    w.run_until(Duration::from_secs(5), |w| !sent_to(w, raw, |m| matches!(m, Message::Request(_))).is_empty());
    (w, leecher, l, raw)
}

/// The blocks of the messages to a hand-driven peer that `pick` selects, in order.
fn sent_to(w: &World, raw: usize, pick: impl Fn(&Message) -> bool) -> Vec<(u32, u32)> {
    messages_to(w, raw)
        .iter()
        .filter(|m| pick(m))
        .filter_map(|m| match m {
            Message::Request(b) | Message::Cancel(b) => Some((b.piece, b.offset)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_silent_seeder_is_sent_cancels_and_blocks_it_sends_later_are_kept() {
    let tt = plain_torrent(31);
    let (mut w, leecher, l, raw) = leecher_with_a_raw_seeder(31, &tt, |_| {});
    let is_request = |m: &Message| matches!(m, Message::Request(_));
    let is_cancel = |m: &Message| matches!(m, Message::Cancel(_));
    let asked = sent_to(&w, raw, is_request);

    // Silent past the request timeout: the leecher gives up on every request and says so.
    w.run_until(Duration::from_secs(60), |w| !sent_to(w, raw, is_cancel).is_empty());
    assert!(w.nodes[leecher].engine.peers(l)[0].snubbed);
    let (mut cancelled, mut asked_sorted) = (sent_to(&w, raw, is_cancel), asked.clone());
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
    let (mut w, leecher, l, raw) = leecher_with_a_raw_seeder(35, &tt, |c| c.max_in_flight_bytes = PIECE as u64);
    let asked = sent_to(&w, raw, |m| matches!(m, Message::Request(_)));
    w.run_until(Duration::from_secs(60), |w| !sent_to(w, raw, |m| matches!(m, Message::Cancel(_))).is_empty());
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
    let (mut w, _, _, raw) = leecher_with_a_raw_seeder(33, &tt, |_| {});
    let mut unchoke = Vec::new();
    Message::Unchoke.encode(&mut unchoke);
    // UNCHOKE every 2 s and never a block: after the request timeout (30 s) the leecher
    // cancels what it asked for.
    for _ in 0..25 {
        w.run_for(Duration::from_secs(2));
        w.raw_send(raw, &unchoke);
    }
    let cancels = sent_to(&w, raw, |m| matches!(m, Message::Cancel(_)));
    assert!(!cancels.is_empty(), "no request was given up on in 50 s");
}

#[test]
fn blocks_asked_for_when_the_rest_was_skipped_are_asked_for_again_when_wanted_again() {
    // 8 pieces of 2 blocks: the leecher asks the silent seeder for all 16 at once.
    let tt = TestTorrent::new(34, PIECE, &[file("a.bin", 8 * PIECE as u64)]);
    let (mut w, leecher, l, raw) = leecher_with_a_raw_seeder(34, &tt, |_| {});
    w.run_for(Duration::from_secs(1));
    let mut asked = sent_to(&w, raw, |m| matches!(m, Message::Request(_)));
    asked.sort();
    assert_eq!(asked.len(), 16);
    // Skipping the only file finishes the torrent, which cancels every request.
    w.command(leecher, |e, now| e.set_file_priority(l, 0, FilePriority::Skip, now)).expect("skip");
    w.run_until(Duration::from_secs(5), |w| w.nodes[leecher].finished(l));
    w.run_until(Duration::from_secs(5), |w| sent_to(w, raw, |m| matches!(m, Message::Cancel(_))).len() == 16);
    // Wanted again: the same blocks are asked for again.
    w.command(leecher, |e, now| e.set_file_priority(l, 0, FilePriority::Normal, now)).expect("want");
    w.run_until(Duration::from_secs(5), |w| sent_to(w, raw, |m| matches!(m, Message::Request(_))).len() == 32);
    let mut again = sent_to(&w, raw, |m| matches!(m, Message::Request(_)))[16..].to_vec();
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
    let leechers: Vec<(usize, shoal_core::TorrentId)> = (0..6)
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
    let dialled = " 0 Connect { conn: ConnId(";
    let to_listen = format!("addr: {listen} }}");
    w.run_until(Duration::from_secs(120), |w| {
        w.trace_lines.iter().any(|t| t.contains(dialled) && t.contains(&to_listen))
    });
    w.command(seeder, |e, now| e.resume(s, now)).expect("resume");
    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));
    assert_complete(&w, leecher, l, &tt);

    let dials: Vec<&String> = w.trace_lines.iter().filter(|t| t.contains(dialled)).collect();
    assert!(
        dials.iter().all(|t| t.contains(&to_listen)),
        "only listening addresses are dialled, never a peer's source port: {dials:?}"
    );
}

#[test]
fn every_downloaded_piece_is_reported_once_after_its_write() {
    let tt = plain_torrent(14);
    let mut w = World::new(14);
    w.timing.disk = Duration::from_millis(50);
    w.keep_trace = true;
    let seeder = w.add_node();
    let leecher = w.add_node();
    let s = w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    let mut got = w.nodes[leecher].finished_pieces(l);
    got.sort();
    assert_eq!(got, (0..tt.pieces()).collect::<Vec<_>>(), "each piece reported exactly once");
    assert!(w.nodes[seeder].finished_pieces(s).is_empty(), "pieces found by the check are not reported one by one");
    // The event waits for the write: it comes a disk latency after the Write job was issued.
    for (at, e) in &w.nodes[leecher].events {
        let Event::PieceFinished { piece, .. } = e else { continue };
        let issued = w
            .trace_lines
            .iter()
            .find_map(|line| {
                let mut f = line.split(' ');
                let (time, node, kind) = (f.next()?, f.next()?, f.next()?);
                let (_job, _t, p) = (f.next()?, f.next()?, f.next()?);
                let ours = node == leecher.to_string() && kind == "Write" && p == piece.to_string();
                ours.then(|| time.parse::<u64>().ok()).flatten()
            })
            .expect("a Write job for every finished piece");
        assert!(
            at.as_micros() >= issued + 50_000,
            "piece {piece} reported at {at:?}, its write was issued at {issued} us"
        );
    }
}

/// Requests the leecher had outstanding after each message before `until` (requests it sent
/// minus blocks it received, from the wire log).
fn outstanding(w: &World, leecher: usize, until: shoal_core::Instant) -> Vec<i64> {
    let mut now = 0i64;
    let mut out = vec![0];
    for e in w.wire_log.iter().take_while(|e| e.at < until) {
        match e.msg {
            Message::Request(_) if e.from.0 == leecher => now += 1,
            Message::Piece { .. } if e.to.0 == leecher => now -= 1,
            _ => {}
        }
        out.push(now);
    }
    out
}

fn max_outstanding(w: &World, leecher: usize, until: shoal_core::Instant) -> i64 {
    outstanding(w, leecher, until).into_iter().max().unwrap_or(0)
}

fn outstanding_at(w: &World, leecher: usize, until: shoal_core::Instant) -> i64 {
    outstanding(w, leecher, until).last().copied().unwrap_or(0)
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
    let min = shoal_core::engine::Config::default().min_requests_per_peer as i64;
    let most = max_outstanding(&w, leecher, w.now);
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
    w.leech(leecher, &tt);
    w.run_for(Duration::from_secs(8));
    let outstanding = outstanding_at(&w, leecher, w.now);
    let min = shoal_core::engine::Config::default().min_requests_per_peer as i64;
    // 100 kB/s is 12 blocks in two seconds: the queue is back to the minimum.
    assert!(outstanding <= min, "{outstanding} requests outstanding to a 100 kB/s peer after 8 s");
}

#[test]
fn a_hash_job_that_writes_the_piece_saves_the_write_job() {
    let tt = plain_torrent(16);
    let mut w = World::new(16);
    w.timing.hash_writes = true;
    w.keep_trace = true;
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    let disk = w.nodes[leecher].disk(l);
    assert_eq!(disk.written_pieces.len(), tt.pieces() as usize, "each piece written once, by its hash job");
    let kinds = |kind: &str| {
        w.trace_lines
            .iter()
            .filter(|line| {
                let mut f = line.split(' ');
                f.nth(1) == Some(&leecher.to_string()) && f.next() == Some(kind)
            })
            .count()
    };
    assert_eq!(kinds("Hash"), tt.pieces() as usize);
    assert_eq!(kinds("Write"), 0, "no separate write job");
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
        w.nodes[leecher].engine.set_deadline_piece(shoal_core::TorrentId(99), None, w.now).is_err(),
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
    let is_request_from_leecher = |e: &support::WireEntry| e.from.0 == leecher && matches!(e.msg, Message::Request(_));
    let quiet_since = shoal_core::Instant::from_micros(w.now.as_micros() - 1_000_000);
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

/// The torrents of a node in each state, as (checking, queued).
fn check_states(w: &World, node: usize, ts: &[shoal_core::TorrentId]) -> (Vec<usize>, Vec<usize>) {
    let states: Vec<TorrentState> = ts.iter().map(|t| w.nodes[node].stats(*t).state).collect();
    let checking = (0..ts.len()).filter(|&i| matches!(states[i], TorrentState::Checking { .. })).collect();
    let queued = (0..ts.len()).filter(|&i| states[i] == TorrentState::CheckQueued).collect();
    (checking, queued)
}

#[test]
fn torrents_check_one_at_a_time_in_the_order_they_came() {
    let tts: Vec<TestTorrent> = (0..3).map(|i| plain_torrent(20 + i)).collect();
    let mut w = World::new(17);
    w.timing.disk = Duration::from_millis(10);
    let node = w.add_node();
    let ts: Vec<_> = tts.iter().map(|tt| w.seed(node, tt)).collect();

    assert_eq!(check_states(&w, node, &ts), (vec![0], vec![1, 2]), "the first checks, the others wait");
    assert!(w.nodes.iter().all(|n| n.tracker_gets.is_empty()), "no announces while checking or queued");
    let mut seen_checking = Vec::new();
    w.run_until(Duration::from_secs(60), |w| {
        let (checking, _) = check_states(w, node, &ts);
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
    assert_eq!(check_states(&w, node, &ts), (vec![0, 1], vec![2, 3]), "two slots");

    // Removing a queued torrent leaves the running checks alone.
    w.command(node, |e, now| e.remove(ts[2], now)).expect("remove");
    assert_eq!(check_states(&w, node, &ts[..2]), (vec![0, 1], vec![]));
    // Pausing a checking torrent hands its slot to the next in line at once.
    w.command(node, |e, now| e.pause(ts[0], now)).expect("pause");
    assert_eq!(w.nodes[node].stats(ts[0]).state, TorrentState::Paused);
    let (checking, queued) = check_states(&w, node, &[ts[1], ts[3]]);
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

const MIB: u64 = 1 << 20;

/// A one-file torrent of `mib` MiB in 256 KiB pieces.
fn big_torrent(seed: u64, mib: u64) -> TestTorrent {
    TestTorrent::new(seed, 256 * 1024, &[file("big.bin", mib * MIB)])
}

/// Adds a torrent whose data is all there, known from resume data (no check).
fn seed_unchecked(w: &mut World, node: usize, tt: &TestTorrent) -> shoal_core::TorrentId {
    let have = Some(Bitfield::full(tt.pieces()));
    let params = AddTorrent { have, check_existing: false, ..AddTorrent::new(tt.meta.clone()) };
    w.add_torrent(node, params, Disk::full(&tt.meta, &tt.data))
}

/// Virtual seconds until `t` finished on `node`, counted from now.
fn seconds_to_finish(w: &mut World, node: usize, t: shoal_core::TorrentId) -> f64 {
    let start = w.now;
    w.run_until(Duration::from_secs(120), |w| w.nodes[node].finished(t));
    (w.now - start).as_secs_f64()
}

fn assert_about(got: f64, expected: f64, what: &str) {
    assert!(got >= 0.8 * expected && got <= 1.3 * expected, "{what}: {got:.2} s, expected about {expected} s");
}

#[test]
fn without_limits_16_mib_arrive_in_a_moment() {
    let tt = big_torrent(50, 16);
    let mut w = World::new(50);
    let seeder = w.add_node();
    let leecher = w.add_node();
    seed_unchecked(&mut w, seeder, &tt);
    let l = w.leech(leecher, &tt);
    let secs = seconds_to_finish(&mut w, leecher, l);
    assert!(secs < 3.0, "unlimited transfer took {secs:.2} s");
    assert_complete(&w, leecher, l, &tt);
}

#[test]
fn upload_limit_paces_the_seeder() {
    let tt = big_torrent(51, 16);
    let mut w = World::new(51);
    let seeder = w.add_node_with(|c| c.max_upload_rate = MIB);
    let leecher = w.add_node();
    let s = seed_unchecked(&mut w, seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].stats(l).downloaded >= 4 * MIB);
    let rate = w.nodes[seeder].stats(s).upload_rate as f64;
    assert!((0.8..=1.2).contains(&(rate / MIB as f64)), "upload rate {rate} while limited to 1 MiB/s");
    let secs = seconds_to_finish(&mut w, leecher, l);
    assert_about(secs, 12.0, "the last 12 MiB at 1 MiB/s");
    assert_complete(&w, leecher, l, &tt);
}

#[test]
fn download_limit_paces_the_leecher_and_lifting_it_speeds_up() {
    let tt = big_torrent(52, 16);
    let mut w = World::new(52);
    let seeder = w.add_node();
    let leecher = w.add_node_with(|c| c.max_download_rate = MIB);
    seed_unchecked(&mut w, seeder, &tt);
    let l = w.leech(leecher, &tt);
    let start = w.now;
    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].stats(l).downloaded >= 8 * MIB);
    assert_about((w.now - start).as_secs_f64(), 8.0, "the first 8 MiB at 1 MiB/s");
    let rate = w.nodes[leecher].stats(l).download_rate as f64;
    assert!((0.8..=1.2).contains(&(rate / MIB as f64)), "download rate {rate} while limited to 1 MiB/s");

    w.command(leecher, |e, now| e.set_rate_limits(0, 0, now));
    let secs = seconds_to_finish(&mut w, leecher, l);
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
    seed_unchecked(&mut w, seeder, &a);
    seed_unchecked(&mut w, seeder, &b);
    let ta = w.leech(la, &a);
    let tb = w.leech(lb, &b);
    let start = w.now;
    w.run_until(Duration::from_secs(60), |w| w.nodes[la].finished(ta) && w.nodes[lb].finished(tb));
    let done = |node: usize, t| {
        let at = w.nodes[node].events.iter().find(|(_, e)| *e == Event::Finished { torrent: t }).unwrap().0;
        (at - start).as_secs_f64()
    };
    // 16 MiB in all through one 1 MiB/s limit, shared evenly: both end near 16 s.
    assert_about(done(la, ta), 16.0, "torrent a");
    assert_about(done(lb, tb), 16.0, "torrent b");
    assert_complete(&w, la, ta, &a);
    assert_complete(&w, lb, tb, &b);
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
    seed_unchecked(&mut w, seeder, &tt);
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
    let s = seed_unchecked(&mut w, seeder, &tt);
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
    let nodes: Vec<usize> = (0..4).map(|_| w.add_node_with(|c| c.upload_slots = 1)).collect();
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
fn a_leecher_without_trackers_finds_the_seeder_through_the_dht() {
    let mut tt = plain_torrent(21);
    tt.meta.trackers.clear();
    let mut w = World::new(21);
    let (seeder, leecher, router) = (w.add_node(), w.add_node(), w.add_node());
    let addrs: Vec<_> = (0..3).map(|i| w.nodes[i].addr).collect();
    // Each node knows one other: the router node only serves the DHT.
    // All three look at once, before anyone has announced: the leecher's first lookup finds
    // nothing, and it must ask again soon (not in 15 minutes).
    for (node, knows) in [(seeder, router), (leecher, router), (router, seeder)] {
        let at = addrs[knows];
        w.command(node, |e, now| {
            e.enable_dht(shoal_core::dht::DhtConfig { bootstrap: Vec::new(), ..Default::default() }, None, now);
            e.add_dht_node(at, now);
        });
    }
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);

    w.run_until(Duration::from_secs(120), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    let dht = w.nodes[leecher].stats(l).dht.expect("the DHT is on");
    assert!(dht.working && dht.peers >= 1, "{dht:?}");
}

/// The counts of node `node`'s DHT scrape `id`, once it ended.
fn dht_scrape_result(
    w: &World,
    node: usize,
    id: shoal_core::engine::DhtScrapeId,
) -> Option<(InfoHash, shoal_core::dht::SwarmCount)> {
    w.nodes[node].events.iter().find_map(|(_, e)| match e {
        Event::DhtScrape { id: i, info_hash, swarm } if *i == id => Some((*info_hash, *swarm)),
        _ => None,
    })
}

#[test]
fn a_dht_scrape_counts_the_seed_and_the_leecher_of_a_torrent_we_do_not_have() {
    use shoal_core::engine::{Config, DhtScrapeError, Engine};
    let mut tt = plain_torrent(23);
    tt.meta.trackers.clear();
    let hash = tt.meta.info_hash;
    // Without the DHT there is nobody to ask.
    let mut off = Engine::new(Config::default(), 1, shoal_core::Instant::ZERO);
    assert_eq!(off.dht_scrape(hash, shoal_core::Instant::ZERO), Err(DhtScrapeError::Off));

    let mut w = World::new(23);
    let (seeder, leecher, router, asker) = (w.add_node(), w.add_node(), w.add_node(), w.add_node());
    // The seeder sends slowly (1 MB at 2 kB/s): the leecher stays a leecher throughout.
    w.nodes[seeder].uplink.rate = Some(2_000);
    let addrs: Vec<_> = (0..4).map(|i| w.nodes[i].addr).collect();
    for (node, knows) in [(seeder, router), (leecher, router), (router, seeder), (asker, router)] {
        let at = addrs[knows];
        w.command(node, |e, now| {
            e.enable_dht(shoal_core::dht::DhtConfig { bootstrap: Vec::new(), ..Default::default() }, None, now);
            e.add_dht_node(at, now);
        });
    }
    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    // The leecher found the seeder on the DHT: the seeder has announced itself by then.
    w.run_until(Duration::from_secs(180), |w| w.nodes[leecher].stats(l).dht.is_some_and(|d| d.peers >= 1));

    // The asker has no such torrent. The leecher's own announce follows its lookup, so the
    // first count may still miss it: ask again (a few times at most) until both are in.
    let mut swarm = None;
    for _ in 0..5 {
        let id = w.command(asker, |e, now| e.dht_scrape(hash, now)).expect("the DHT is on");
        w.run_until(Duration::from_secs(120), |w| dht_scrape_result(w, asker, id).is_some());
        let (info_hash, counted) = dht_scrape_result(&w, asker, id).unwrap();
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
    let addrs: Vec<_> = (0..2).map(|i| w.nodes[i].addr).collect();
    for (node, knows) in [(seeder, leecher), (leecher, seeder)] {
        let at = addrs[knows];
        w.command(node, |e, now| {
            e.enable_dht(shoal_core::dht::DhtConfig { bootstrap: Vec::new(), ..Default::default() }, None, now);
            e.add_dht_node(at, now);
        });
    }
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

// ---- peer exchange (BEP 11) ----

/// A swarm without trackers: a seeder C, a slow leecher B that knows C, and a leecher A that
/// knows only B. B downloads and uploads at 4 kB/s, so it stays a leecher connected to C, and
/// A would need minutes to get the torrent from it alone.
struct PexSwarm {
    w: World,
    tt: TestTorrent,
    seeder: usize,
    slow: usize,
    leecher: usize,
    l: shoal_core::TorrentId,
}

fn pex_swarm(seed: u64, private: bool) -> PexSwarm {
    let files = [file("a.bin", 700_001), file("b.bin", 300_000)];
    let mut tt =
        if private { TestTorrent::private(seed, PIECE, &files) } else { TestTorrent::new(seed, PIECE, &files) };
    tt.meta.trackers.clear();
    assert_eq!(tt.meta.info.private, private);
    let mut w = World::new(seed);
    w.tap = true;
    w.keep_trace = true;
    let seeder = w.add_node();
    let slow = w.add_node_with(|c| {
        c.max_download_rate = 4_000;
        c.max_upload_rate = 4_000;
    });
    let leecher = w.add_node();
    let (seeder_addr, slow_addr) = (w.nodes[seeder].addr, w.nodes[slow].addr);
    w.seed(seeder, &tt);
    let params = AddTorrent { peers: vec![seeder_addr], ..AddTorrent::new(tt.meta.clone()) };
    let b = w.add_torrent(slow, params, Disk::empty(&tt.meta));
    w.run_until(Duration::from_secs(5), |w| w.nodes[slow].stats(b).peers == 1);
    let params = AddTorrent { peers: vec![slow_addr], ..AddTorrent::new(tt.meta.clone()) };
    let l = w.add_torrent(leecher, params, Disk::empty(&tt.meta));
    PexSwarm { w, tt, seeder, slow, leecher, l }
}

/// When `node` asked the runtime to dial `addr`, if it did.
fn dialled(w: &World, node: usize, addr: SocketAddr) -> Option<shoal_core::Instant> {
    let (connect, to) = (format!(" {node} Connect {{ conn: ConnId("), format!("addr: {addr} }}"));
    let line = w.trace_lines.iter().find(|t| t.contains(&connect) && t.contains(&to))?;
    let micros = line.split(' ').next()?.parse().ok()?;
    Some(shoal_core::Instant::from_micros(micros))
}

/// The extension ids `node` advertised in its extended handshakes (tapped).
fn advertised(w: &World, node: usize) -> Vec<BTreeMap<String, u8>> {
    w.wire_log
        .iter()
        .filter(|e| e.from.0 == node)
        .filter_map(|e| match &e.msg {
            Message::Extended { id: 0, payload } => ExtendedHandshake::decode(payload).ok().map(|h| h.m),
            _ => None,
        })
        .collect()
}

#[test]
fn a_leecher_that_knows_one_slow_peer_finds_the_seeder_through_its_pex() {
    let PexSwarm { mut w, tt, seeder, slow, leecher, l } = pex_swarm(24, false);
    let start = w.now;
    w.run_until(Duration::from_secs(100), |w| w.nodes[leecher].finished(l));

    assert_complete(&w, leecher, l, &tt);
    assert!(!w.nodes[slow].finished(shoal_core::TorrentId(1)), "B stayed a leecher");
    let seeder_addr = w.nodes[seeder].addr;
    let at = dialled(&w, leecher, seeder_addr).expect("the leecher dialled the seeder");
    // B's first message goes about a minute after the connection, not at once.
    let waited = at - start;
    assert!(waited >= Duration::from_secs(60) && waited < Duration::from_secs(63), "dialled after {waited:?}");
    assert_eq!(w.nodes[leecher].stats(l).pex, Some(1), "one peer learned through PEX");

    // What B told A: the seeder it dialled, as a seed reachable by outgoing connections.
    let ut_pex = advertised(&w, leecher)[0][UT_PEX];
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
    let PexSwarm { mut w, tt, seeder, leecher, l, .. } = pex_swarm(25, true);
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
    assert_eq!(dialled(&w, leecher, seeder_addr), None, "the leecher never dialled the seeder");
    assert_eq!(w.nodes[leecher].stats(l).pex, None);
    for node in 0..3 {
        assert!(advertised(&w, node).iter().all(|m| !m.contains_key(UT_PEX)), "node {node} offered ut_pex");
    }
    let extension_messages: Vec<_> =
        w.wire_log.iter().filter(|e| matches!(e.msg, Message::Extended { id, .. } if id != 0)).collect();
    assert!(extension_messages.is_empty(), "{extension_messages:?}");
}

/// The messages an engine sent a hand-driven peer.
fn raw_messages(received: &[u8]) -> Vec<Message> {
    let mut d = HandshakeDecoder::new(Limits::default());
    d.feed(received);
    let Ok(HandshakeStep::Done(_, mut d)) = d.take() else { return Vec::new() };
    std::iter::from_fn(|| d.next_message().ok().flatten()).collect()
}

/// A hand-driven peer's greeting: handshake, then an extended handshake offering ut_pex (as
/// id 7) with its listening port and what it sees as our address.
fn pex_greeting(info_hash: InfoHash, who: u8, listen_port: Option<u16>, yourip: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut peer_id = *b"-XX0001-pexpeer00000";
    peer_id[19] = who;
    Handshake::new(info_hash, PeerId(peer_id)).encode(&mut out);
    let ext =
        ExtendedHandshake { m: BTreeMap::from([(UT_PEX.to_owned(), 7)]), p: listen_port, yourip, ..Default::default() };
    Message::Extended { id: 0, payload: ext.encode() }.encode(&mut out);
    out
}

fn pex_frame(id: u8, added: &[SocketAddr]) -> Vec<u8> {
    let msg = PexMessage { added: added.iter().map(|a| (*a, 0)).collect(), dropped: vec![] };
    let mut out = Vec::new();
    Message::Extended { id, payload: msg.encode() }.encode(&mut out);
    out
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
    assert_eq!(dialled(&w, node, own), None, "dialled itself");
    assert_eq!(dialled(&w, node, zero_port), None, "dialled port 0");
    assert!(dialled(&w, node, added[2]).is_some(), "dialled a peer it was told of");

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
    let heard = |raw: usize| -> Vec<Vec<(SocketAddr, u8)>> {
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
