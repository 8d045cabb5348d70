//! Magnet links in the engine (BEP 9): fetching the info dictionary from peers, serving it,
//! and peers that lie about it or send garbage.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::magnet::Magnet;
use shoal_core::wire::{ExtendedHandshake, Handshake, Message, MetadataMessage, UT_PEX};
use shoal_core::{AddMagnet, Event, InfoHash, PeerId, TorrentState};
use support::{file, plain_torrent, raw_messages, FileSpec, NodeId, TestTorrent, World, PIECE, TRACKER};

/// The id our hand-driven peers want `ut_metadata` messages under.
const RAW_UT: u8 = 9;

/// A torrent whose info dictionary spans several 16 KiB metadata pieces (many small files).
fn many_files_torrent(seed: u64) -> TestTorrent {
    let files: Vec<FileSpec> =
        (0..900).map(|i| file(Box::leak(format!("dir/file-{i:04}.dat").into_boxed_str()), 100 + i % 7)).collect();
    TestTorrent::new(seed, 16 * 1024, &files)
}

/// A magnet link to `tt`, with a display name and the tracker.
fn magnet_of(tt: &TestTorrent) -> Magnet {
    Magnet {
        display_name: Some("the magnet".into()),
        trackers: vec![TRACKER.to_string()],
        ..Magnet::new(tt.meta.info_hash)
    }
}

/// Index of the first event of `node` matching `pred`.
fn event_index(w: &World, node: NodeId, pred: impl Fn(&Event) -> bool) -> Option<usize> {
    w.nodes[node].events.iter().position(|(_, e)| pred(e))
}

/// The ut_metadata messages the engine sent a hand-driven peer.
fn metadata_messages(received: &[u8]) -> Vec<MetadataMessage> {
    raw_messages(received)
        .into_iter()
        .filter_map(|m| match m {
            Message::Extended { id: RAW_UT, payload } => Some(MetadataMessage::decode(&payload).expect("valid")),
            _ => None,
        })
        .collect()
}

/// The extended message id the engine advertised for ut_metadata, and its metadata size.
fn engine_ut_metadata(received: &[u8]) -> (u8, Option<u64>) {
    let ext = raw_messages(received)
        .into_iter()
        .find_map(|m| match m {
            Message::Extended { id: 0, payload } => ExtendedHandshake::decode(&payload).ok(),
            _ => None,
        })
        .expect("the engine sent an extended handshake");
    (ext.m["ut_metadata"], ext.metadata_size)
}

/// Handshake, then an extended handshake offering ut_metadata with `size`.
fn greeting(info_hash: InfoHash, size: Option<u64>, id: u8) -> Vec<u8> {
    let mut out = Vec::new();
    Handshake::new(info_hash, PeerId([b'r', b'a', b'w', id, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
        .encode(&mut out);
    let ext = ExtendedHandshake {
        m: BTreeMap::from([("ut_metadata".to_owned(), RAW_UT)]),
        metadata_size: size,
        ..Default::default()
    };
    Message::Extended { id: 0, payload: ext.encode() }.encode(&mut out);
    out
}

/// A ut_metadata message under extension id `id`.
fn ut(id: u8, m: &MetadataMessage) -> Vec<u8> {
    let mut out = Vec::new();
    Message::Extended { id, payload: m.encode() }.encode(&mut out);
    out
}

/// An extended message with any payload.
fn raw_ext(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Message::Extended { id, payload: payload.to_vec() }.encode(&mut out);
    out
}

/// The address of hand-driven peer number `i`.
fn raw_addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 9, i], 5000))
}

#[test]
fn a_magnet_fetches_its_metadata_from_the_swarm_then_downloads() {
    let tt = plain_torrent(60);
    let mut w = World::new(60);
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.add_magnet(leecher, AddMagnet::new(magnet_of(&tt)));

    let st = w.nodes[leecher].stats(l);
    assert_eq!(st.state, TorrentState::Metadata);
    assert_eq!(st.name, "the magnet");
    assert!(w.nodes[leecher].engine.metainfo(l).is_none(), "no metainfo before the metadata");

    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    let got = w.nodes[leecher].events.iter().find_map(|(_, e)| match e {
        Event::MetadataReceived { torrent, info } if *torrent == l => Some(info.clone()),
        _ => None,
    });
    assert_eq!(got.as_deref(), Some(&tt.meta.info_bytes[..]), "the exact info dictionary");
    let meta_at = event_index(&w, leecher, |e| matches!(e, Event::MetadataReceived { .. })).unwrap();
    let first_piece = event_index(&w, leecher, |e| matches!(e, Event::PieceFinished { .. })).unwrap();
    assert!(meta_at < first_piece);
    let st = w.nodes[leecher].stats(l);
    assert_eq!(st.state, TorrentState::Seeding);
    assert_eq!(st.name, tt.meta.info.name, "the real name replaces the display name");
    assert_eq!(w.nodes[leecher].engine.metainfo(l).unwrap().info, tt.meta.info);
    assert!(w.nodes[leecher].disk(l).contents() == tt.data, "byte-exact download");
    assert!(!w.nodes[leecher].saw(|e| matches!(e, Event::Checked { .. })), "a fresh magnet is not checked");
}

#[test]
fn multi_piece_metadata_from_two_seeds_and_only_the_selected_files() {
    let tt = many_files_torrent(61);
    assert!(tt.meta.info_bytes.len() > 2 * 16 * 1024, "the info dictionary spans three metadata pieces");
    let mut w = World::new(61);
    let seeders: Vec<NodeId> = (0..2).map(|_| w.add_node()).collect();
    let leecher = w.add_node();
    for &s in &seeders {
        w.seed(s, &tt);
    }
    let magnet = Magnet { select_only: Some(vec![3, 500]), ..magnet_of(&tt) };
    let l = w.add_magnet(leecher, AddMagnet { sequential: true, ..AddMagnet::new(magnet) });
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    let meta = w.nodes[leecher].engine.metainfo(l).unwrap().clone();
    assert_eq!(meta.info_bytes, tt.meta.info_bytes);
    let wanted: Vec<u32> = [3usize, 500].iter().flat_map(|&f| tt.file_pieces(f)).collect();
    let mut got = w.nodes[leecher].finished_pieces(l);
    got.sort();
    got.dedup();
    assert_eq!(got, wanted, "only the pieces of the selected files");
    let disk = w.nodes[leecher].disk(l).contents();
    for f in [3, 500] {
        let r = tt.file_range(f);
        assert!(disk[r.clone()] == tt.data[r], "file {f} is exact");
    }
}

#[test]
fn a_peer_sending_wrong_metadata_is_banned_and_an_honest_one_completes_it() {
    let tt = many_files_torrent(62);
    let size = tt.meta.info_bytes.len() as u64;
    let mut w = World::new(62);
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    // No trackers: the liar is the only peer at first.
    let l = w.add_magnet(leecher, AddMagnet::new(Magnet::new(tt.meta.info_hash)));

    let liar = w.raw_connect(leecher, raw_addr(1));
    w.raw_send(liar, &greeting(tt.meta.info_hash, Some(size), 1));
    w.run_for(Duration::from_millis(50));
    let (engine_ut, engine_size) = engine_ut_metadata(&w.raws[liar].received);
    assert_eq!(engine_size, None, "no metadata to offer yet");
    let asked: Vec<u32> = metadata_messages(&w.raws[liar].received)
        .into_iter()
        .map(|m| match m {
            MetadataMessage::Request { piece } => piece,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(asked, [0, 1, 2], "every piece is asked of the only peer");
    // Right sizes, wrong bytes.
    for piece in asked {
        let len = (size - piece as u64 * 16384).min(16384) as usize;
        let data = MetadataMessage::Data { piece, total_size: size, data: vec![b'x'; len] };
        w.raw_send(liar, &ut(engine_ut, &data));
    }
    w.run_until(Duration::from_secs(5), |w| w.raws[liar].closed);
    let node = &w.nodes[leecher];
    assert!(node.saw(|e| matches!(e, Event::PeerBanned { addr, .. } if *addr == raw_addr(1))));
    assert_eq!(node.stats(l).state, TorrentState::Metadata, "still fetching");

    let seeder_addr = w.nodes[seeder].addr;
    w.command(leecher, |e, now| e.add_peers(l, &[seeder_addr], now)).expect("add_peers");
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));
    assert!(w.nodes[leecher].disk(l).contents() == tt.data);
}

#[test]
fn hostile_metadata_traffic_closes_the_sender_or_is_ignored() {
    let tt = plain_torrent(63);
    let size = tt.meta.info_bytes.len() as u64;
    let ih = tt.meta.info_hash;
    let mut w = World::new(63);
    let leecher = w.add_node();
    let l = w.add_magnet(leecher, AddMagnet::new(Magnet::new(ih)));

    // (what, advertised size, what to send after the engine's requests, closed?)
    type Reply = fn(u8, u64) -> Vec<u8>;
    let cases: Vec<(&str, Option<u64>, Reply, bool)> = vec![
        ("garbage ut_metadata payload", Some(size), |id, _| raw_ext(id, b"d8:msg_typei0e5:pie"), true),
        (
            "wrong total_size",
            Some(size),
            |id, size| ut(id, &MetadataMessage::Data { piece: 0, total_size: size + 1, data: vec![0; size as usize] }),
            true,
        ),
        (
            "piece past the end",
            Some(size),
            |id, size| ut(id, &MetadataMessage::Data { piece: 7, total_size: size, data: vec![0; 16384] }),
            true,
        ),
        (
            "short piece",
            Some(size),
            |id, size| ut(id, &MetadataMessage::Data { piece: 0, total_size: size, data: vec![0; 10] }),
            true,
        ),
        (
            "HAVE for a piece that cannot exist",
            Some(size),
            |_, _| {
                let mut b = Vec::new();
                Message::Have { piece: 4_000_000 }.encode(&mut b);
                b
            },
            false,
        ),
        ("oversized metadata_size: never asked", Some(200 << 20), |_, _| Vec::new(), false),
    ];
    let mut raws = Vec::new();
    for (i, (what, adv, reply, closes)) in cases.into_iter().enumerate() {
        let raw = w.raw_connect(leecher, raw_addr(10 + i as u8));
        w.raw_send(raw, &greeting(ih, adv, 10 + i as u8));
        w.run_for(Duration::from_millis(50));
        let (engine_ut, _) = engine_ut_metadata(&w.raws[raw].received);
        let asked = metadata_messages(&w.raws[raw].received).len();
        if adv == Some(size) {
            assert!(asked > 0, "{what}: a peer with a plausible size is asked");
        } else {
            assert_eq!(asked, 0, "{what}: not asked");
        }
        w.raw_send(raw, &reply(engine_ut, size));
        w.run_for(Duration::from_millis(50));
        assert_eq!(w.raws[raw].closed, closes, "{what}");
        raws.push((what, raw));
    }
    assert_eq!(w.nodes[leecher].stats(l).state, TorrentState::Metadata);

    // An honest seeder arrives; the HAVE that cannot exist now closes its sender.
    let seeder = w.add_node();
    w.seed(seeder, &tt);
    let seeder_addr = w.nodes[seeder].addr;
    w.command(leecher, |e, now| e.add_peers(l, &[seeder_addr], now)).expect("add_peers");
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));
    for (what, raw) in raws {
        let expect_closed = what != "oversized metadata_size: never asked";
        assert_eq!(w.raws[raw].closed, expect_closed, "after the metadata: {what}");
    }
}

#[test]
fn a_torrent_serves_its_metadata_and_rejects_what_does_not_exist() {
    let tt = many_files_torrent(64);
    let size = tt.meta.info_bytes.len() as u64;
    let mut w = World::new(64);
    let seeder = w.add_node();
    w.seed(seeder, &tt);
    w.run_until(Duration::from_secs(5), |w| w.nodes[seeder].saw(|e| matches!(e, Event::Checked { .. })));

    let raw = w.raw_connect(seeder, raw_addr(1));
    w.raw_send(raw, &greeting(tt.meta.info_hash, None, 1));
    w.run_for(Duration::from_millis(50));
    let (engine_ut, advertised) = engine_ut_metadata(&w.raws[raw].received);
    assert_eq!(advertised, Some(size));
    for piece in [0, 2, 1, 3, u32::MAX] {
        w.raw_send(raw, &ut(engine_ut, &MetadataMessage::Request { piece }));
    }
    w.run_for(Duration::from_millis(50));
    let got = metadata_messages(&w.raws[raw].received);
    let piece = |i: usize| tt.meta.info_bytes[i * 16384..((i + 1) * 16384).min(size as usize)].to_vec();
    assert_eq!(
        got,
        [
            MetadataMessage::Data { piece: 0, total_size: size, data: piece(0) },
            MetadataMessage::Data { piece: 2, total_size: size, data: piece(2) },
            MetadataMessage::Data { piece: 1, total_size: size, data: piece(1) },
            MetadataMessage::Reject { piece: 3 },
            MetadataMessage::Reject { piece: u32::MAX },
        ]
    );
    assert!(!w.raws[raw].closed);
}

#[test]
fn a_magnet_asked_to_check_existing_data_checks_once_the_files_are_known() {
    let tt = plain_torrent(65);
    let mut w = World::new(65);
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.add_magnet(leecher, AddMagnet { check_existing: true, ..AddMagnet::new(magnet_of(&tt)) });
    w.run_until(Duration::from_secs(60), |w| w.nodes[leecher].finished(l));

    let meta_at = event_index(&w, leecher, |e| matches!(e, Event::MetadataReceived { .. })).unwrap();
    let total = tt.pieces();
    // The harness maps an empty disk: nothing valid is found, everything is downloaded.
    let checked_at = event_index(&w, leecher, |e| *e == Event::Checked { torrent: l, have: 0, total }).unwrap();
    let first_piece = event_index(&w, leecher, |e| matches!(e, Event::PieceFinished { .. })).unwrap();
    assert!(meta_at < checked_at && checked_at < first_piece, "metadata, then the check, then pieces");
    assert!(w.nodes[leecher].disk(l).contents() == tt.data);
}

#[test]
fn a_magnet_that_turns_out_private_withdraws_its_pex_offer() {
    let files = [file("a.bin", 200_001)];
    let tt = TestTorrent::private(65, PIECE, &files);
    assert!(tt.meta.info.private);
    let mut w = World::new(65);
    w.tap = true;
    let seeder = w.add_node();
    let leecher = w.add_node();
    w.seed(seeder, &tt);
    let l = w.add_magnet(leecher, AddMagnet::new(magnet_of(&tt)));
    assert_eq!(w.nodes[leecher].stats(l).pex, Some(0), "on while privacy is unknown");

    w.run_until(Duration::from_secs(30), |w| w.nodes[leecher].finished(l));
    // Long enough for a PEX message to be due.
    w.run_for(Duration::from_secs(70));

    let offers: Vec<(NodeId, Option<u8>)> = w
        .wire_log
        .iter()
        .filter_map(|e| match &e.msg {
            Message::Extended { id: 0, payload } => {
                ExtendedHandshake::decode(payload).ok().map(|h| (e.from.0, h.m.get(UT_PEX).copied()))
            }
            _ => None,
        })
        .collect();
    let from_leecher: Vec<Option<u8>> = offers.iter().filter(|(n, _)| *n == leecher).map(|(_, m)| *m).collect();
    assert!(from_leecher.len() >= 2, "{offers:?}");
    assert!(from_leecher[0].is_some_and(|id| id != 0), "offered while privacy was unknown: {offers:?}");
    // Withdrawn (id 0) once private; later connections are never offered it.
    assert_eq!(from_leecher[1], Some(0), "withdrawn once private: {offers:?}");
    assert!(from_leecher[2..].iter().all(Option::is_none), "{offers:?}");
    assert!(offers.iter().filter(|(n, _)| *n == seeder).all(|(_, m)| m.is_none()), "{offers:?}");
    assert_eq!(w.nodes[leecher].stats(l).pex, None);
    let pex_sent = w.wire_log.iter().any(|e| {
        e.from.0 == leecher && matches!(e.msg, Message::Extended { id, .. } if id == from_leecher[0].unwrap_or(0))
    });
    assert!(!pex_sent);
}
