//! Unit tests of the engine's session-level rules: admission, shutdown, failed jobs.

use super::{
    lay_out_read, AddMagnet, AddTorrent, CloseReason, Config, ConnId, DiskError, DiskErrorKind, DiskJob, DiskJobKind,
    Engine, EngineError, Event, InfoHash, Input, Instant, JobId, JobResult, Metainfo, Output, PeerId, PeerIo,
    PlacedSpan, SocketAddr, TorrentId, TICK,
};
use crate::bitfield::Bitfield;
use crate::storage::FileSpan;

fn placed(at: usize, file: u32, offset: u64, len: u32) -> PlacedSpan {
    PlacedSpan { at, span: FileSpan { file, offset, len, pad: false } }
}

use crate::create::{PieceHasher, TorrentBuilder};
use crate::wire::{Handshake, Message, WireError};

/// A seeding engine of a 4-piece torrent, with `config`, and the torrent's info-hash.
fn seeder(config: Config) -> (Engine, TorrentId, InfoHash) {
    let (piece, pieces) = (16 * 1024u32, 4u32);
    let mut b = TorrentBuilder::new("admission".into());
    b.set_piece_length(piece);
    b.add_file(vec!["data.bin".into()], u64::from(piece * pieces));
    let mut hasher = PieceHasher::new(piece);
    hasher.update(&vec![7u8; (piece * pieces) as usize]);
    let meta = Metainfo::from_bytes(&b.build(hasher.finish()).expect("builds")).expect("parses");
    let hash = meta.info_hash;
    // These tests play the runtime's part for TCP connections by hand.
    let mut e = Engine::new(Config { utp: false, ..config }, 1, Instant::ZERO);
    let add = AddTorrent { have: Some(Bitfield::full(pieces)), check_existing: false, ..AddTorrent::new(meta) };
    let t = e.add_torrent(add, Instant::ZERO).expect("adds");
    while e.poll_output().is_some() {}
    (e, t, hash)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("an address")
}

/// The connections the engine closed since the last call, and why.
fn closed(e: &mut Engine) -> Vec<(ConnId, CloseReason)> {
    std::iter::from_fn(|| e.poll_output())
        .filter_map(|o| match o {
            Output::Peer(PeerIo::Close { conn, reason }) => Some((conn, reason)),
            _ => None,
        })
        .collect()
}

/// A peer `n` that connects, handshakes and says it has nothing, and is `interested` or not.
fn peer(e: &mut Engine, hash: InfoHash, n: u8, interested: bool) -> ConnId {
    let conn = e.accept(addr(&format!("192.0.2.{n}:6881")), Instant::ZERO).expect("admitted");
    let mut bytes = Vec::new();
    Handshake::new(hash, PeerId([n; 20])).encode(&mut bytes);
    Message::HaveNone.encode(&mut bytes);
    if interested {
        Message::Interested.encode(&mut bytes);
    }
    e.handle(Input::PeerBytes(conn, &bytes), Instant::ZERO);
    conn
}

#[test]
fn handshakes_pending_from_one_address_are_limited_but_not_on_loopback() {
    let (mut e, _, _) = seeder(Config { max_connections_per_ip: 2, ..Config::default() });
    let now = Instant::ZERO;
    assert!(e.accept(addr("192.0.2.1:1000"), now).is_some());
    assert!(e.accept(addr("192.0.2.1:1001"), now).is_some());
    assert_eq!(e.accept(addr("192.0.2.1:1002"), now), None, "a third from one address");
    assert!(e.accept(addr("192.0.2.2:1000"), now).is_some(), "another address");
    assert!(e.accept(addr("[2001:db8::1]:1000"), now).is_some());
    assert!(e.accept(addr("[2001:db8::2]:1000"), now).is_some());
    assert_eq!(e.accept(addr("[2001:db8::3]:1000"), now), None, "one /64 is one address");
    for port in 0..10 {
        assert!(e.accept(addr(&format!("127.0.0.1:{}", 2000 + port)), now).is_some(), "loopback");
    }
    // A handshake that arrived frees its address's pending slot.
    let first = e.accept(addr("192.0.2.9:1"), now).expect("admitted");
    e.handle(Input::Closed(first, CloseReason::PeerClosed), now);
    assert!(e.accept(addr("192.0.2.9:2"), now).is_some());
}

#[test]
fn a_full_pending_table_closes_its_oldest_entry_for_a_new_one() {
    let (mut e, _, _) = seeder(Config { max_pending_handshakes: 2, ..Config::default() });
    let now = Instant::ZERO;
    let a = e.accept(addr("192.0.2.1:1"), now).expect("admitted");
    let b = e.accept(addr("192.0.2.2:1"), now).expect("admitted");
    assert!(closed(&mut e).is_empty());
    let c = e.accept(addr("192.0.2.3:1"), now).expect("admitted");
    assert_eq!(closed(&mut e), vec![(a, CloseReason::Replaced)], "the oldest makes room");
    let _d = e.accept(addr("192.0.2.4:1"), now).expect("admitted");
    assert_eq!(closed(&mut e), vec![(b, CloseReason::Replaced)]);
    assert!(!closed(&mut e).iter().any(|(conn, _)| *conn == c));
}

#[test]
fn a_full_torrent_replaces_idle_peers_oldest_first_and_keeps_those_that_want_ours() {
    let (mut e, t, hash) = seeder(Config { max_peers_per_torrent: 3, ..Config::default() });
    let idle_old = peer(&mut e, hash, 1, false);
    let wants = peer(&mut e, hash, 2, true);
    let idle_new = peer(&mut e, hash, 3, false);
    assert!(closed(&mut e).is_empty());
    assert_eq!(e.peers(t).len(), 3);
    let fourth = peer(&mut e, hash, 4, true);
    assert_eq!(closed(&mut e), vec![(idle_old, CloseReason::Replaced)], "the longest connected idle peer makes room");
    let fifth = peer(&mut e, hash, 5, true);
    assert_eq!(closed(&mut e), vec![(idle_new, CloseReason::Replaced)], "then the other idle one");
    assert_eq!(e.peers(t).len(), 3);
    // Everyone left wants our pieces: a newcomer is refused, nobody is replaced.
    let sixth = e.accept(addr("192.0.2.6:6881"), Instant::ZERO).expect("pending");
    let mut bytes = Vec::new();
    Handshake::new(hash, PeerId([6; 20])).encode(&mut bytes);
    e.handle(Input::PeerBytes(sixth, &bytes), Instant::ZERO);
    assert_eq!(closed(&mut e), vec![(sixth, CloseReason::TooManyConnections)]);
    let left: Vec<PeerId> = e.peers(t).iter().map(|p| p.peer_id).collect();
    assert_eq!(left.len(), 3);
    for (conn, n) in [(wants, 2u8), (fourth, 4), (fifth, 5)] {
        assert!(left.contains(&PeerId([n; 20])), "peer {n} ({conn:?}) kept");
    }
}

#[test]
fn a_peer_that_says_nothing_after_its_handshake_is_closed() {
    let (mut e, t, hash) = seeder(Config::default());
    let conn = e.accept(addr("192.0.2.1:1"), Instant::ZERO).expect("admitted");
    let mut bytes = Vec::new();
    Handshake::new(hash, PeerId([1; 20])).encode(&mut bytes);
    e.handle(Input::PeerBytes(conn, &bytes), Instant::ZERO);
    let talker = peer(&mut e, hash, 2, false);
    let mut keepalive = Vec::new();
    Message::KeepAlive.encode(&mut keepalive);
    let timeout = e.config().handshake_timeout;
    let mut now = Instant::ZERO;
    let mut gone = Vec::new();
    while now <= Instant::ZERO + timeout + TICK * 2 {
        now = e.poll_timeout().expect("running").max(now);
        e.handle(Input::PeerBytes(conn, &keepalive), now);
        e.handle_timeout(now);
        gone.extend(closed(&mut e));
    }
    assert_eq!(gone, vec![(conn, CloseReason::Silent)], "keep-alives alone do not keep a slot");
    assert!(!gone.iter().any(|(c, _)| *c == talker));
    assert_eq!(e.peers(t).len(), 1);
}

#[test]
fn after_shutdown_commands_are_refused_and_the_engine_stops_once() {
    let (mut e, t, _) = seeder(Config::default());
    let listener = e.accept(addr("192.0.2.1:1"), Instant::ZERO).expect("admitted");
    let now = Instant::from_micros(1_000);
    e.shutdown(now);
    let outputs: Vec<Output> = std::iter::from_fn(|| e.poll_output()).collect();
    assert!(
        matches!(outputs.first(), Some(Output::Peer(PeerIo::Close { conn, reason: CloseReason::Shutdown })) if *conn == listener)
    );
    // A torrent without trackers has nobody to say goodbye to: the stop completes at once.
    let events: Vec<&Event> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(ev) => Some(ev),
            _ => None,
        })
        .collect();
    assert_eq!(events, [&Event::Removed { torrent: t }, &Event::ShutdownComplete]);
    assert_eq!(e.pause(t, now), Err(EngineError::ShuttingDown));
    assert_eq!(e.set_sequential(t, true, now), Err(EngineError::ShuttingDown));
    assert_eq!(e.add_peers(t, &[addr("192.0.2.2:1")], now), Err(EngineError::ShuttingDown));
    let magnet = crate::magnet::Magnet::new(InfoHash([9; 20]));
    assert_eq!(e.add_magnet(AddMagnet::new(magnet), now), Err(EngineError::ShuttingDown));
    assert_eq!(e.accept(addr("192.0.2.3:1"), now), None, "no new connections");
    assert!(e.is_shut_down());
    assert_eq!(e.poll_timeout(), None, "a stopped engine has no deadline");
    e.shutdown(now);
    e.handle_timeout(now);
    assert!(e.poll_output().is_none(), "ShutdownComplete is reported once");
}

/// The `PeerClosed` events since the last call: (address, reason).
fn peer_closed_events(e: &mut Engine) -> Vec<(SocketAddr, CloseReason)> {
    std::iter::from_fn(|| e.poll_output())
        .filter_map(|o| match o {
            Output::Event(Event::PeerClosed { addr, reason, .. }) => Some((addr, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_malformed_message_closes_its_peer_with_the_decoder_error() {
    let (mut e, t, hash) = seeder(Config::default());
    let conn = peer(&mut e, hash, 1, false);
    while e.poll_output().is_some() {}
    // A BITFIELD of 3 bytes for a torrent of 4 pieces (which takes 1).
    let mut bytes = Vec::new();
    Message::Bitfield(vec![0xff; 3]).encode(&mut bytes);
    e.handle(Input::PeerBytes(conn, &bytes), Instant::ZERO);
    let outputs: Vec<Output> = std::iter::from_fn(|| e.poll_output()).collect();
    let wire = CloseReason::Wire(WireError::BadBitfieldLength { len: 3, expected: 1 });
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::Peer(PeerIo::Close { conn: c, reason }) if *c == conn && *reason == wire)),
        "{outputs:?}"
    );
    let event = Event::PeerClosed { torrent: t, addr: addr("192.0.2.1:6881"), reason: wire };
    assert!(outputs.iter().any(|o| matches!(o, Output::Event(ev) if *ev == event)), "{outputs:?}");
    assert!(e.peers(t).is_empty());
}

#[test]
fn a_handshake_for_another_torrent_is_closed_as_such() {
    let (mut e, t, _) = seeder(Config::default());
    // An incoming peer naming a torrent we do not have never reaches a torrent.
    let stranger = e.accept(addr("192.0.2.1:1"), Instant::ZERO).expect("admitted");
    let mut bytes = Vec::new();
    Handshake::new(InfoHash([9; 20]), PeerId([1; 20])).encode(&mut bytes);
    e.handle(Input::PeerBytes(stranger, &bytes), Instant::ZERO);
    assert_eq!(closed(&mut e), vec![(stranger, CloseReason::UnknownTorrent)]);
    // A peer we dialled for this torrent that answers for another one.
    let remote = addr("192.0.2.2:6881");
    e.add_peers(t, &[remote], Instant::ZERO).expect("running");
    let dialled = std::iter::from_fn(|| e.poll_output())
        .find_map(|o| match o {
            Output::Peer(PeerIo::Connect { conn, addr }) if addr == remote => Some(conn),
            _ => None,
        })
        .expect("the engine dials the new candidate");
    e.handle(Input::Connected(dialled), Instant::ZERO);
    while e.poll_output().is_some() {}
    e.handle(Input::PeerBytes(dialled, &bytes), Instant::ZERO);
    let outputs: Vec<Output> = std::iter::from_fn(|| e.poll_output()).collect();
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Peer(PeerIo::Close { conn, reason: CloseReason::WrongInfoHash }) if *conn == dialled
    )));
    let event = Event::PeerClosed { torrent: t, addr: remote, reason: CloseReason::WrongInfoHash };
    assert!(outputs.iter().any(|o| matches!(o, Output::Event(ev) if *ev == event)), "{outputs:?}");
}

#[test]
fn pausing_a_torrent_closes_its_peers_as_paused_and_the_runtime_reason_is_reported() {
    let (mut e, t, hash) = seeder(Config::default());
    let a = peer(&mut e, hash, 1, false);
    let _b = peer(&mut e, hash, 2, true);
    while e.poll_output().is_some() {}
    // A connection the runtime saw end keeps the runtime's reason.
    e.handle(Input::Closed(a, CloseReason::Io(std::io::ErrorKind::ConnectionReset)), Instant::ZERO);
    let reset = CloseReason::Io(std::io::ErrorKind::ConnectionReset);
    assert_eq!(peer_closed_events(&mut e), vec![(addr("192.0.2.1:6881"), reset)]);
    e.pause(t, Instant::ZERO).expect("running");
    assert_eq!(peer_closed_events(&mut e), vec![(addr("192.0.2.2:6881"), CloseReason::TorrentPaused)]);
    assert!(e.peers(t).is_empty());
}

#[test]
fn peers_closed_by_a_shutdown_or_a_removal_say_which() {
    let (mut e, _, hash) = seeder(Config::default());
    peer(&mut e, hash, 1, false);
    while e.poll_output().is_some() {}
    e.shutdown(Instant::ZERO);
    assert_eq!(peer_closed_events(&mut e), vec![(addr("192.0.2.1:6881"), CloseReason::Shutdown)]);
    let (mut e, t2, hash) = seeder(Config::default());
    peer(&mut e, hash, 2, false);
    while e.poll_output().is_some() {}
    e.remove(t2, Instant::ZERO).expect("running");
    assert_eq!(peer_closed_events(&mut e), vec![(addr("192.0.2.2:6881"), CloseReason::TorrentRemoved)]);
}

#[test]
fn a_failed_disk_job_answers_its_kind_and_gives_a_write_buffer_back() {
    let error = DiskError { kind: DiskErrorKind::NoSpace, message: "full".into() };
    let span = FileSpan { file: 0, offset: 0, len: 3, pad: false };
    let job = |kind| DiskJob { id: JobId(1), torrent: TorrentId(1), kind };
    let write = job(DiskJobKind::Write { piece: 0, spans: vec![span], data: vec![1, 2, 3] });
    assert!(matches!(
        write.fail(error.clone()),
        JobResult::Written { result: Err(ref e), ref data } if *e == error && *data == [1, 2, 3]
    ));
    let block = crate::types::BlockRef { piece: 0, offset: 0, len: 3 };
    let read = job(DiskJobKind::Read { block, len: 3, spans: vec![placed(0, 0, 0, 3)] });
    assert!(matches!(read.fail(error.clone()), JobResult::Read(Err(ref e)) if *e == error));
    let verify = job(DiskJobKind::Verify { piece: 0, spans: vec![span], expected: [0; 20] });
    assert!(matches!(verify.fail(error.clone()), JobResult::Verified(Err(ref e)) if *e == error));
}

#[test]
fn lay_out_read_puts_each_span_at_its_place_and_checks_lengths() {
    // Two blocks of 3 bytes, the second split over two files, each after 2 bytes of room.
    let spans = [placed(2, 0, 10, 3), placed(7, 0, 13, 1), placed(8, 1, 0, 2)];
    let out = lay_out_read(&spans, 10, b"abcdef").expect("fits");
    assert_eq!(&out, b"\0\0abc\0\0def");
    assert_eq!(lay_out_read(&spans, 10, b"abcde"), None, "range too short");
    assert_eq!(lay_out_read(&spans, 10, b"abcdefg"), None, "range too long");
    assert_eq!(lay_out_read(&spans, 9, b"abcdef"), None, "buffer too short");
}
